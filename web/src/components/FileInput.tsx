/**
 * A file field: drop a file or choose one (uploaded at once through the storage API, the field
 * gets its URL), or type a URL or data: URI. Shows a preview of what will be sent.
 * @module
 */
import { createContext, useContext, useEffect, useRef, useState, type DragEvent, type ReactNode } from "react";
import { kindOf, type OutputKind } from "../lib/outputs.js";
import type { FileField } from "../lib/schema-form.js";
import { formatBytes } from "../lib/format.js";
import { MULTIPART_THRESHOLD } from "../api.js";
import { useSession } from "../session.js";

/** Lets the page know uploads are in flight, so that it does not run with a half-filled form. */
export const UploadTracker = createContext<{ begin(): () => void }>({ begin: () => () => undefined });

const MEDIA_WORD: Record<FileField["media"], string> = { image: "an image", audio: "an audio file", video: "a video", any: "a file" };

export function Preview({ url, kind, label }: { url: string; kind: OutputKind; label: string }): ReactNode {
  const [size, setSize] = useState<string | null>(null);
  if (kind === "image") {
    return (
      <figure className="preview">
        <img src={url} alt={`Preview of ${label}`} onLoad={(e) => setSize(`${e.currentTarget.naturalWidth}×${e.currentTarget.naturalHeight}`)} />
        {size ? <figcaption className="muted small">{size}</figcaption> : null}
      </figure>
    );
  }
  if (kind === "audio") return <audio className="preview" controls src={url} aria-label={`Preview of ${label}`} />;
  if (kind === "video") return <video className="preview" controls src={url} aria-label={`Preview of ${label}`} />;
  return null;
}

export function FileInput({ field, id, value, onChange, disabled, aria }: { field: FileField; id: string; value: string; onChange: (v: string) => void; disabled: boolean; aria: Record<string, unknown> }): ReactNode {
  const { session } = useSession();
  const tracker = useContext(UploadTracker);
  const fileRef = useRef<HTMLInputElement>(null);
  const [localFile, setLocalFile] = useState<File | null>(null);
  const [localUrl, setLocalUrl] = useState<string | null>(null);
  const [progress, setProgress] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [dragging, setDragging] = useState(false);

  // The preview's object URL holds the file in memory until revoked; made here so that each one made is revoked.
  useEffect(() => {
    if (!localFile) {
      setLocalUrl(null);
      return undefined;
    }
    const url = URL.createObjectURL(localFile);
    setLocalUrl(url);
    return () => URL.revokeObjectURL(url);
  }, [localFile]);

  const upload = (file: File): void => {
    if (!session) return;
    setError(null);
    setLocalFile(file);
    setProgress(0);
    onChange("");
    const done = tracker.begin();
    session.api
      .upload(file, setProgress)
      .then(
        (url) => onChange(url),
        (err: unknown) => setError(`Upload failed: ${err instanceof Error ? err.message : String(err)}`),
      )
      .finally(() => {
        setProgress(null);
        done();
      });
  };

  const onDrop = (e: DragEvent<HTMLDivElement>): void => {
    e.preventDefault();
    setDragging(false);
    const file = e.dataTransfer.files[0];
    if (file && !disabled) upload(file);
  };

  const previewUrl = localUrl && (value === "" || progress !== null) ? localUrl : value;
  const kind: OutputKind = field.media !== "any" ? field.media : kindOf(localFile?.type, previewUrl);
  const showPreview = previewUrl !== "" && /^(https?:|data:|blob:)/i.test(previewUrl);

  return (
    <div className="file-input">
      <div
        className={`dropzone${dragging ? " dragging" : ""}`}
        onDragOver={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={onDrop}
      >
        <span className="muted">Drop {MEDIA_WORD[field.media]} here, or</span>
        <button type="button" className="button small" disabled={disabled || progress !== null} onClick={() => fileRef.current?.click()}>
          Choose file
        </button>
        <input
          ref={fileRef}
          type="file"
          className="visually-hidden"
          tabIndex={-1}
          accept={field.accept}
          aria-label={`${field.label} file`}
          data-field={field.key}
          onChange={(e) => {
            const file = e.target.files?.[0];
            if (file) upload(file);
            e.target.value = "";
          }}
        />
      </div>
      <input
        id={id}
        type="text"
        inputMode="url"
        className="url"
        placeholder="https://… or data:…"
        value={value}
        disabled={disabled || progress !== null}
        onChange={(e) => {
          setLocalFile(null);
          onChange(e.target.value);
        }}
        {...aria}
      />
      {progress !== null ? (
        <p className="upload-status" role="status">
          <progress value={progress} max={1} aria-label={`Uploading ${field.label}`} /> Uploading {localFile ? `${localFile.name} (${formatBytes(localFile.size)}${localFile.size > MULTIPART_THRESHOLD ? ", in parts" : ""})` : ""}…{" "}
          <span className="muted small" data-testid="upload-percent">
            {Math.round(progress * 100)}%
          </span>
        </p>
      ) : null}
      {error ? (
        <p className="field-error" role="alert">
          {error}
        </p>
      ) : null}
      {showPreview ? <Preview url={previewUrl} kind={kind} label={field.label} /> : null}
    </div>
  );
}
