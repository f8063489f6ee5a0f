"""Media: transcription, caption files, blobs and their content types."""
