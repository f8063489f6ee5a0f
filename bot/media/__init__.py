"""Media files users share: what they are (magic bytes, not the platform's word) and where they are kept."""
