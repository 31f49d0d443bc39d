/** The daemon's public configuration (GET /api/config): the limits the UI applies. */
import { api } from "/js/api.js";

/**
 * The limits the daemon runs with: `message_chars`, `title_chars`, `body_bytes`,
 * `frame_bytes`, `send_rate`, `send_burst`. Filled by loadConfig() before any view is drawn.
 */
export const limits = {};

/** Fetch the configuration once; the UI starts only after it is known. */
export async function loadConfig() {
  const config = await api.config();
  Object.assign(limits, config.limits);
  return config;
}
