"""The HTTP API's route groups, mixed into chatire.api.ChatireAPI on one Klein router."""
