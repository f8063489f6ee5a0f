"""Email delivery of chain results: addresses and who may receive, the message itself, the transports (SMTP,
Resend) and the durable delivery step."""
