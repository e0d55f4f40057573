"""Bytes to text for mail, with the fallbacks Japanese mail needs.

Declared charsets are hints, not facts. What we see in real (and the bsfilter
test) mail:
  * Shift_JIS bytes labelled iso-2022-jp: ISO-2022-JP is 7-bit, so any 8-bit
    byte proves the label wrong.
  * EUC-JP labelled iso-2022-jp, for the same reason.
  * typos such as "iso-2202-jp", which no codec knows.
  * gb2312 text that uses GBK/GB18030 characters.
When the label is wrong or unknown we try the plausible codecs strictly and
keep the decoding that reads most like text in that script (kana/kanji for
Japanese), instead of mojibake.
"""

import codecs
import re

# Superset codecs: a declared charset is decoded with the superset that mail
# software actually emits under that name (Outlook's "shift_jis" is CP932 and
# has NEC/IBM extensions; "gb2312" mail often holds GBK characters).
_ALIASES = {
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932",
    "ms_kanji": "cp932", "windows-31j": "cp932", "cp932": "cp932", "csshiftjis": "cp932",
    "euc-jp": "euc_jp", "x-euc-jp": "euc_jp", "eucjp": "euc_jp", "cseucpkdfmtjapanese": "euc_jp",
    "iso-2022-jp": "iso2022_jp_ext", "csiso2022jp": "iso2022_jp_ext",
    "iso-2022-jp-1": "iso2022_jp_1", "iso-2022-jp-2": "iso2022_jp_2",
    "iso-2022-jp-3": "iso2022_jp_3", "iso-2022-jp-2004": "iso2022_jp_2004",
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "euc-cn": "gb18030",
    "cp936": "gb18030", "gb18030": "gb18030",
    "big5": "big5hkscs",
    "us-ascii": "ascii", "ascii": "ascii", "ansi_x3.4-1968": "ascii",
    # Windows-1252 is what "iso-8859-1" mail contains in practice (smart quotes).
    "iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252",
    "ks_c_5601-1987": "cp949", "euc-kr": "cp949",
}
_JAPANESE = {"cp932", "euc_jp", "iso2022_jp_ext", "iso2022_jp_1", "iso2022_jp_2",
             "iso2022_jp_3", "iso2022_jp_2004"}
_ISO2022 = ("iso2022_jp_ext", "iso2022_jp_2", "iso2022_jp_3", "iso2022_jp_2004")

# Scripts that make a decoding "read like text". Half-width katakana and the
# rarer CJK blocks are what a wrong Japanese codec tends to produce, so they
# don't count.
_PLAUSIBLE = ("[\u3040-\u30ff\u4e00-\u9fff\u3000-\u303f\uff01-\uff5e"
              "\uac00-\ud7a3\u00c0-\u00ffa-zA-Z0-9 .,\n]")
_KANA = "[\u3040-\u30ff]"
_HAN = "[\u4e00-\u9fff]"
_HIGH_BYTE = re.compile(rb"[\x80-\xff]")
# ISO-2022-JP's designations, as Microsoft's CP50220/CP50221 writers use
# them: ASCII and JIS-Roman, JIS X 0208 (old and new), half-width katakana.
_JIS_ESCAPE = re.compile(rb"(\x1b(?:\(B|\(J|\$@|\$B|\(I))")
_LINE_BREAKS = re.compile(rb"([\r\n]+)")
_jis_to_sjis = None


# Codecs Python knows that are no mail charset. punycode decodes in
# quadratic time (256 KiB labelled charset=punycode took 4-11 s of the
# filter; bench/codec_timing.py times every label, and it was the only one
# not linear); idna is punycode per label; undefined always raises. The
# bytes-to-bytes codecs (base64, zlib, ...) are not text encodings at all.
_NOT_CHARSETS = {"punycode", "idna", "undefined"}


def codec_for(label):
    """Python codec name for a MIME charset label, or None if unknown (or no charset)."""
    if not label:
        return None
    label = label.strip().strip('"\'').lower()
    if label in _ALIASES:
        return _ALIASES[label]
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):
        return None
    if info.name in _NOT_CHARSETS or not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def _try(data: bytes, codec: str):
    try:
        return data.decode(codec)
    except (UnicodeError, LookupError):
        return None


def _plausibility(text: str, japanese: bool) -> float:
    # re.compile caches; the patterns are compiled only for mail that needs
    # guessing (big CJK classes cost ~1.5 ms each to compile).
    if not text:
        return 0.0
    score = len(re.findall(_PLAUSIBLE, text))
    if japanese and not re.search(_KANA, text):
        # Japanese prose without a single kana is almost never real: random
        # kanji is what Latin-1 bytes look like through a Japanese codec.
        score -= len(re.findall(_HAN, text))
    return score / len(text)


def _iso2022_as_cp932(data: bytes):
    """ISO-2022-JP as Outlook, Becky! and most Japanese Windows mailers
    write it (Microsoft's CP50220): JIS X 0208 plus the NEC and IBM
    extension characters of CP932 (① ㈱ Ⅲ ～ 髙 﨑), which no Python
    ISO-2022-JP codec accepts, so a business mail with ㈱ in the signature
    was left undecoded, its escape sequences read as words. Each
    double-byte pair is carried to Shift_JIS by the standard arithmetic
    (a table built on first use) and the whole decoded as CP932. None if
    the bytes are not that."""
    global _jis_to_sjis
    if _jis_to_sjis is None:
        table = {}
        for j1 in range(0x21, 0x7F):
            s1 = (j1 - 0x21) // 2 + 0x81
            s1 += 0x40 if s1 > 0x9F else 0
            for j2 in range(0x21, 0x7F):
                s2 = j2 + (0x7E if j1 % 2 == 0 else (0x1F if j2 < 0x60 else 0x20))
                table[bytes((j1, j2))] = bytes((s1, s2))
        _jis_to_sjis = table
    out = []
    mode = b"\x1b(B"
    for k, piece in enumerate(_JIS_ESCAPE.split(data)):
        if k % 2:
            mode = piece
        elif mode in (b"\x1b$B", b"\x1b$@"):
            # A line break inside a double-byte run is malformed but common.
            for i, run in enumerate(_LINE_BREAKS.split(piece)):
                if i % 2:
                    out.append(run)
                    continue
                if len(run) % 2:
                    return None
                pairs = [_jis_to_sjis.get(run[j:j + 2]) for j in range(0, len(run), 2)]
                if None in pairs:
                    return None
                out.extend(pairs)
        elif mode == b"\x1b(I":
            if any(b < 0x21 or b > 0x5F for b in piece):
                return None
            out.append(bytes(b + 0x80 for b in piece))
        elif _HIGH_BYTE.search(piece):
            return None
        else:
            out.append(piece)
    return _try(b"".join(out), "cp932")


def guess(data: bytes, prefer_japanese: bool = True) -> str:
    """Decode bytes of unknown or untrustworthy charset."""
    if b"\x1b$" in data or b"\x1b(" in data:
        for codec in _ISO2022:
            text = _try(data, codec)
            if text is not None:
                return text
        text = _iso2022_as_cp932(data)
        if text is not None:
            return text
    if not _HIGH_BYTE.search(data):
        return data.decode("ascii", "replace")
    text = _try(data, "utf-8")
    if text is not None:
        return text
    # Judge on a sample: plausibility of 8 KiB is as telling as of 1 MiB.
    sample = data[:8192]
    # On a tie the earlier codec wins: Japanese first (our users' mail), then
    # Windows-1252 (unlabelled Western mail), then Chinese.
    candidates = ("cp932", "euc_jp", "cp1252", "gb18030") if prefer_japanese else ("gb18030", "cp932", "euc_jp", "cp1252")
    best, best_score = None, 0.0
    for codec in candidates:
        text = sample.decode(codec, "replace")
        # Replacement characters mean this codec is wrong about those bytes.
        score = _plausibility(text, codec in _JAPANESE) - 2.0 * text.count("\ufffd") / max(len(text), 1)
        if score > best_score + 0.02:
            best, best_score = codec, score
    if best is not None and best_score > 0.5:
        return data.decode(best, "replace")
    return data.decode("cp1252", "replace")


def decode(data: bytes, label=None) -> str:
    """Bytes to text, trusting the label only as far as the bytes allow."""
    codec = codec_for(label)
    if codec is None:
        return guess(data)
    if codec.startswith("iso2022_jp") and _HIGH_BYTE.search(data):
        # 7-bit charset with 8-bit bytes: mislabelled (usually Shift_JIS).
        return guess(data)
    if codec == "ascii" and _HIGH_BYTE.search(data):
        return guess(data)
    text = _try(data, codec)
    if text is not None:
        return text
    if codec in _JAPANESE or codec in ("gb18030", "big5hkscs", "cp949", "utf-8"):
        return guess(data, prefer_japanese=codec in _JAPANESE or codec == "utf-8")
    try:
        return data.decode(codec, "replace")
    except (UnicodeError, LookupError):
        # The label names a Python codec that is no charset: "base64", "zlib"
        # and "rot13" refuse bytes.decode, "idna" and "undefined" raise even
        # with "replace". The fuzzer found charset=base64 stopping
        # classification (the filter passed the mail as UNSURE 0.00).
        return guess(data)
