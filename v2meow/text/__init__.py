"""The joint music-text embedding (MuLan role): text (and, later, audio) into one space."""
