"""Follow-up workflows: reminders, recurring firings, nudges and questions waiting for an answer."""
