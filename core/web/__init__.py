"""Web: the HTTP routes beside the pages (webhooks, health) and the server's start-up tuning."""
