"""What stands between users and the model: PII redaction and moderation of inputs and answers."""
