"""Notifications for members who are away: who is due, when, and how they are reached."""
