// Connecting to the server (our embedded server or a real moq-relay) with @moq/net.
//
// The page takes `?url=` (default: the page's own origin; `?relay=` is the older name) and
// `?token=`. For an `http://` URL @moq/net fetches `/certificate.sha256` itself (without the
// query) and pins it with WebTransport `serverCertificateHashes` (a self-signed certificate);
// `https://` uses the system's roots (a relay with a real certificate). The token goes to the
// server only as `?jwt=` on the connect URL (moq-relay's convention); the page never shows it,
// and console output of the page (including @moq/net's, which logs the connect URL) has it
// replaced by `<token>`. WebSocket (qmux) races WebTransport after a head start; which one won is
// `connection.transport`.

import { Connection } from "@moq/net";

export type Established = Connection.Established;

export interface ConnectOptions {
  /** Force a transport: "webtransport" (no WebSocket fallback) or "websocket" (no QUIC). */
  transport?: "webtransport" | "websocket";
  /** Give up after this many ms. */
  timeoutMs?: number;
}

export interface Connected {
  connection: Established;
  /** "webtransport" or "websocket", as @moq/net reports it. */
  transport: string;
  /** Negotiated protocol, e.g. "moq-lite-05". */
  version: string;
}

/** Where to connect: `url` carries no token (safe to show); `token` is sent as `?jwt=`. */
export interface ServerTarget {
  url: URL;
  token: string | null;
}

/**
 * The server from the page's parameters: `?url=` (or `?relay=`), else this page's origin; the
 * token from `?token=` (or a `jwt` parameter already in the URL, which is moved out of it).
 *
 * @throws Error for a URL that is not http:// or https://.
 */
export function serverTarget(params: URLSearchParams): ServerTarget {
  const raw = params.get("url") ?? params.get("relay");
  const url = new URL(raw ?? `${location.origin}/`, location.href);
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(`the server URL must be http:// (certificate fingerprint) or https://, not ${url.protocol}`);
  }
  let token = params.get("token");
  if (url.searchParams.has("jwt")) {
    token ??= url.searchParams.get("jwt");
    url.searchParams.delete("jwt");
  }
  return { url, token: token || null };
}

/** The URL @moq/net connects to: the target's URL with `?jwt=<token>` when there is a token. */
export function connectUrl(target: ServerTarget): URL {
  const url = new URL(target.url);
  if (target.token) url.searchParams.set("jwt", target.token);
  return url;
}

/** `text` with every occurrence of the token (raw and URL-encoded) replaced by `<token>`. */
export function redact(text: string, token: string | null): string {
  if (!token) return text;
  let out = text;
  for (const form of new Set([token, encodeURIComponent(token), new URLSearchParams({ t: token }).toString().slice(2)])) {
    if (form) out = out.split(form).join("<token>");
  }
  return out;
}

let redacting: string | null = null;

/** Make the page's console output (ours and libraries') leave out `token`. Idempotent. */
export function redactConsole(token: string | null): void {
  if (!token || redacting === token) return;
  redacting = token;
  for (const level of ["debug", "log", "info", "warn", "error"] as const) {
    const original = console[level].bind(console);
    console[level] = (...args: unknown[]) =>
      original(...args.map((a) => (typeof a === "string" ? redact(a, token) : a instanceof URL ? redact(a.toString(), token) : a)));
  }
}

export async function connect(target: ServerTarget, options: ConnectOptions = {}): Promise<Connected> {
  redactConsole(target.token);
  if (options.transport === "websocket") {
    // @moq/net races WebTransport whenever the browser has it; hiding the constructor is the
    // one knob that makes it go straight to the WebSocket fallback (for testing that path).
    (globalThis as { WebTransport?: unknown }).WebTransport = undefined;
  }
  try {
    const connection = await Connection.connect(connectUrl(target), {
      websocket: { enabled: options.transport !== "webtransport" },
      signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
    });
    return { connection, transport: connection.transport, version: connection.version };
  } catch (e) {
    // Errors may quote the URL: never let the token reach the page's status line or timeline.
    const message = e instanceof Error ? e.message : String(e);
    throw new Error(redact(message, target.token));
  }
}
