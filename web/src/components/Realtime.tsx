/**
 * A realtime endpoint on the app page: the connection's state, and each result as it arrives with
 * its round-trip time (the newest shown whole, older ones in a list), and the errors in between.
 * @module
 */
import { useCallback, useEffect, useRef, useState, type ReactNode } from "react";
import type { Api } from "../api.js";
import { formatSeconds } from "../lib/format.js";
import { findFiles } from "../lib/outputs.js";
import { RealtimeConnection, type RealtimeError, type RealtimeResult, type RealtimeState } from "../realtime.js";
import { JsonView, displayJson } from "./JsonView.js";
import { AudioPlayer, ImageGallery, OtherFile, VideoPlayer } from "./Media.js";

/** Entries kept on screen; a live form can send many messages a second. */
const KEEP = 50;

type Entry = ({ type: "result" } & RealtimeResult) | ({ type: "error" } & RealtimeError);

export interface RealtimeView {
  state: RealtimeState;
  detail: string | null;
  entries: Entry[];
  sent: number;
  send: (input: unknown) => void;
  connect: () => void;
  disconnect: () => void;
  clear: () => void;
}

export function useRealtime(api: Api | undefined, endpointId: string | null): RealtimeView {
  const [state, setState] = useState<RealtimeState>("disconnected");
  const [detail, setDetail] = useState<string | null>(null);
  const [entries, setEntries] = useState<Entry[]>([]);
  const [sent, setSent] = useState(0);
  const connRef = useRef<RealtimeConnection | null>(null);

  useEffect(() => {
    if (!api || !endpointId) return undefined;
    const conn = new RealtimeConnection(api, endpointId, {
      onState: (s, d) => {
        setState(s);
        setDetail(d);
      },
      onResult: (r) =>
        setEntries((list) => {
          // The timings frame updates the result it follows: replace rather than add.
          const i = list.findIndex((e) => e.type === "result" && e.seq === r.seq && r.seq !== 0);
          if (i >= 0) return list.map((e, j) => (j === i ? { type: "result", ...r } : e));
          return [{ type: "result" as const, ...r }, ...list].slice(0, KEEP);
        }),
      onError: (e) => setEntries((list) => [{ type: "error" as const, ...e }, ...list].slice(0, KEEP)),
    });
    connRef.current = conn;
    setState("disconnected");
    setDetail(null);
    setEntries([]);
    return () => {
      conn.close();
      connRef.current = null;
    };
  }, [api, endpointId]);

  const send = useCallback((input: unknown) => {
    const conn = connRef.current;
    if (!conn) return;
    conn.send(input).then(
      () => setSent((n) => n + 1),
      // The state line already says why the connection failed.
      () => undefined,
    );
  }, []);
  const connect = useCallback(() => void connRef.current?.connect().catch(() => undefined), []);
  const disconnect = useCallback(() => connRef.current?.close(), []);
  const clear = useCallback(() => setEntries([]), []);
  return { state, detail, entries, sent, send, connect, disconnect, clear };
}

const STATE_TEXT: Record<RealtimeState, string> = {
  disconnected: "Not connected",
  connecting: "Connecting…",
  open: "Connected",
  closed: "Connection closed",
};

export function RealtimeStatus({ view }: { view: RealtimeView }): ReactNode {
  return (
    <p className={`run-status realtime-state state-${view.state}`} role="status" aria-live="polite" data-testid="realtime-state">
      <span className="dot" aria-hidden="true" /> {STATE_TEXT[view.state]}
      {view.detail ? ` (${view.detail})` : ""}
    </p>
  );
}

function Latest({ result }: { result: RealtimeResult }): ReactNode {
  const files = findFiles(result.output);
  return (
    <div className="outputs" data-testid="realtime-latest">
      {files.some((f) => f.kind === "image") ? <ImageGallery files={files.filter((f) => f.kind === "image")} /> : null}
      {files.filter((f) => f.kind === "audio").map((f) => <AudioPlayer key={f.path} file={f} />)}
      {files.filter((f) => f.kind === "video").map((f) => <VideoPlayer key={f.path} file={f} />)}
      {files.filter((f) => f.kind === "other").map((f) => <OtherFile key={f.path} file={f} />)}
      <JsonView value={result.output} label={`Result #${result.seq} (JSON)`} />
    </div>
  );
}

function oneLine(value: unknown): string {
  const text = displayJson(value).replace(/\s*\n\s*/g, " ");
  return text.length > 160 ? `${text.slice(0, 160)}…` : text;
}

export function RealtimeResults({ view }: { view: RealtimeView }): ReactNode {
  const latest = view.entries.find((e): e is Extract<Entry, { type: "result" }> => e.type === "result");
  if (view.entries.length === 0) {
    return <p className="muted">Each input sent gets one result, shown here as it arrives with its round-trip time.</p>;
  }
  return (
    <div className="realtime-results">
      {latest ? <Latest result={latest} /> : null}
      <div className="realtime-log-head">
        <h3>Messages</h3>
        <button type="button" className="button small" onClick={view.clear}>
          Clear
        </button>
      </div>
      <ol className="realtime-log" aria-label="Realtime messages, newest first">
        {view.entries.map((e) =>
          e.type === "result" ? (
            <li key={`r${e.seq}-${e.at}`} className="realtime-entry" data-testid="realtime-result" data-seq={e.seq}>
              <span className="seq">#{e.seq}</span>
              <span className="rtt" title="Round trip: from send to result, measured in this page">
                {formatSeconds(e.roundTrip)}
              </span>
              <span className="muted small" title="The server's time for the message">
                {e.serverTime !== null ? `server ${formatSeconds(e.serverTime)}` : ""}
              </span>
              <code className="preview-json">{oneLine(e.output)}</code>
            </li>
          ) : (
            <li key={`e${e.at}-${e.error}`} className="realtime-entry error" data-testid="realtime-error" role="alert">
              <span className="seq">{e.seq !== null ? `#${e.seq}` : "–"}</span>
              <strong>{e.error}</strong>
              <code className="preview-json">{e.reason}</code>
            </li>
          ),
        )}
      </ol>
    </div>
  );
}
