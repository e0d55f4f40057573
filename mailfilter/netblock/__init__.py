"""Country blocking from RIR delegation files: parse (rir), merge (sets),
choose countries (countries), write firewall and table formats (writers)."""
