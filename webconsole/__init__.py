"""The web console: operator pages over the bot's Postgres tables (runs, steps, events, schedules, threads, media,
chains), the `web` platform's playground, `/metrics` and health. Served by `bot up` and `bot serve web`."""
