"""What the model costs: token usage recorded per call, priced per model, and budgets per user and workspace."""
