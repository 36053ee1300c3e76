"""v2meow: video-to-music generation (V2Meow, AAAI 2024), open and offline."""

__version__ = "0.1.0"
