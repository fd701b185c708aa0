"""Serving the model: `cambrian chat` (terminal chat that streams tokens, keeps history, takes images mid-talk)."""
