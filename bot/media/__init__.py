"""Media: files users share, kept in a blob store, transcribed, digested by a chain and retrievable later."""
