"""Notifications: the outbox, mail templates and sending."""
