"""maildir-train: users teach mailfilter by moving mail into learn-spam and learn-good."""
