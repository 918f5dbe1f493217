// Connecting to the relay (our embedded server or a real moq-relay) with @moq/net.
//
// For an `http://` URL @moq/net fetches `/certificate.sha256` itself and pins it with
// WebTransport `serverCertificateHashes` (the server's certificate is self-signed). WebSocket
// (qmux) races WebTransport after a head start; which one won is `connection.transport`.

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

/** The relay URL: `?relay=` if given, else this page's own origin (the server serving it). */
export function relayUrl(params: URLSearchParams): URL {
  const relay = params.get("relay");
  return new URL(relay ?? `${location.origin}/`, location.href);
}

export async function connect(url: URL, options: ConnectOptions = {}): Promise<Connected> {
  if (options.transport === "websocket") {
    // @moq/net races WebTransport whenever the browser has it; hiding the constructor is the
    // one knob that makes it go straight to the WebSocket fallback (for testing that path).
    (globalThis as { WebTransport?: unknown }).WebTransport = undefined;
  }
  const connection = await Connection.connect(url, {
    websocket: { enabled: options.transport !== "webtransport" },
    signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
  });
  return { connection, transport: connection.transport, version: connection.version };
}
