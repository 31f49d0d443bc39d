"""Operations: systemd, graceful shutdown, metrics, logs, the admin CLI, deployment docs."""
