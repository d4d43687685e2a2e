/**
 * How outputs are shown: an image gallery with a zoom dialog, a before/after slider, audio with its
 * waveform, video, download links.
 * @module
 */
import { useEffect, useRef, useState, type ReactNode } from "react";
import { downloadName, type OutputFile } from "../lib/outputs.js";
import { formatBytes } from "../lib/format.js";

function Download({ file }: { file: OutputFile }): ReactNode {
  return (
    <a className="download" href={file.url} download={downloadName(file)} target="_blank" rel="noreferrer">
      Download {downloadName(file)}
      {file.fileSize !== null ? <span className="muted"> ({formatBytes(file.fileSize)})</span> : null}
    </a>
  );
}

/** A modal view of one image, fitted or at its own size; Esc or the button closes it. */
function Zoom({ file, onClose }: { file: OutputFile; onClose: () => void }): ReactNode {
  const ref = useRef<HTMLDialogElement>(null);
  const [actual, setActual] = useState(false);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
  }, []);
  return (
    <dialog ref={ref} className="zoom" aria-label={`Image ${file.path}`} onClose={onClose} onClick={(e) => e.target === ref.current && ref.current.close()}>
      <div className="zoom-bar">
        <button type="button" className="button small" onClick={() => setActual((a) => !a)} aria-pressed={actual}>
          {actual ? "Fit to screen" : "Actual size"}
        </button>
        <Download file={file} />
        <button type="button" className="button small" onClick={() => ref.current?.close()} autoFocus>
          Close
        </button>
      </div>
      <div className={`zoom-body${actual ? " actual" : ""}`}>
        <img src={file.url} alt={`Output ${file.path}, full view`} />
      </div>
    </dialog>
  );
}

export function ImageGallery({ files }: { files: readonly OutputFile[] }): ReactNode {
  const [zoomed, setZoomed] = useState<OutputFile | null>(null);
  return (
    <div className="gallery-images">
      {files.map((f) => (
        <figure key={f.path + f.url} className="output-image">
          <button type="button" className="image-button" onClick={() => setZoomed(f)} aria-label={`Zoom into ${f.path}`}>
            <img src={f.url} alt={`Output ${f.path}`} data-output-path={f.path} />
          </button>
          <figcaption>
            <code>{f.path}</code>
            {f.width && f.height ? (
              <span className="muted">
                {" "}
                {f.width}×{f.height}
              </span>
            ) : null}{" "}
            <Download file={f} />
          </figcaption>
        </figure>
      ))}
      {zoomed ? <Zoom file={zoomed} onClose={() => setZoomed(null)} /> : null}
    </div>
  );
}

/**
 * Before and after in one frame: the "before" image is clipped to the left of the handle. A range
 * input drives it, so it works with arrow keys and screen readers as well as by dragging.
 */
export function CompareSlider({ before, after }: { before: string; after: OutputFile }): ReactNode {
  const [position, setPosition] = useState(50);
  return (
    <figure className="compare">
      <div className="compare-frame checker" style={after.width && after.height ? { aspectRatio: `${after.width} / ${after.height}` } : undefined}>
        <img className="compare-after" src={after.url} alt="After" />
        <img className="compare-before" src={before} alt="Before" style={{ clipPath: `inset(0 ${100 - position}% 0 0)` }} />
        <div className="compare-handle" style={{ left: `${position}%` }} aria-hidden="true" />
        <input type="range" className="compare-range" min={0} max={100} value={position} aria-label="Before and after: share of the frame showing the input" onChange={(e) => setPosition(Number(e.target.value))} />
      </div>
      <figcaption className="muted small">
        <span>◀ Before (input)</span>
        <span>After ({after.path}) ▶</span>
      </figcaption>
    </figure>
  );
}

/** Peaks of decoded audio, drawn once; the played part is tinted as it plays. Click to seek. */
function Waveform({ url, audio }: { url: string; audio: HTMLAudioElement | null }): ReactNode {
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const [peaks, setPeaks] = useState<Float32Array | null>(null);
  const [played, setPlayed] = useState(0);

  useEffect(() => {
    const controller = new AbortController();
    const context = new AudioContext();
    fetch(url, { signal: controller.signal })
      .then((r) => r.arrayBuffer())
      .then((buf) => context.decodeAudioData(buf))
      .then((decoded) => {
        const data = decoded.getChannelData(0);
        const bins = 240;
        const out = new Float32Array(bins);
        const per = Math.max(1, Math.floor(data.length / bins));
        for (let b = 0; b < bins; b++) {
          let max = 0;
          for (let i = b * per; i < Math.min(data.length, (b + 1) * per); i++) max = Math.max(max, Math.abs(data[i] ?? 0));
          out[b] = max;
        }
        if (!controller.signal.aborted) setPeaks(out);
      })
      // No waveform is no loss: the player still works.
      .catch(() => undefined)
      .finally(() => void context.close().catch(() => undefined));
    return () => controller.abort();
  }, [url]);

  useEffect(() => {
    if (!audio) return undefined;
    const update = (): void => setPlayed(audio.duration > 0 ? audio.currentTime / audio.duration : 0);
    audio.addEventListener("timeupdate", update);
    return () => audio.removeEventListener("timeupdate", update);
  }, [audio]);

  useEffect(() => {
    const canvas = canvasRef.current;
    const ctx = canvas?.getContext("2d");
    if (!canvas || !ctx || !peaks) return;
    const { width, height } = canvas;
    ctx.clearRect(0, 0, width, height);
    const bar = width / peaks.length;
    const top = Math.max(...peaks, 0.0001);
    peaks.forEach((p, i) => {
      const h = Math.max(1, (p / top) * (height - 4));
      ctx.fillStyle = i / peaks.length < played ? "#f5a524" : "#6b7280";
      ctx.fillRect(i * bar, (height - h) / 2, Math.max(1, bar - 1), h);
    });
  }, [peaks, played]);

  if (!peaks) return null;
  return (
    <canvas
      ref={canvasRef}
      className="waveform"
      width={720}
      height={80}
      aria-hidden="true"
      onClick={(e) => {
        if (!audio || !(audio.duration > 0)) return;
        const rect = e.currentTarget.getBoundingClientRect();
        audio.currentTime = ((e.clientX - rect.left) / rect.width) * audio.duration;
      }}
    />
  );
}

export function AudioPlayer({ file }: { file: OutputFile }): ReactNode {
  const [audio, setAudio] = useState<HTMLAudioElement | null>(null);
  return (
    <figure className="output-audio">
      <Waveform url={file.url} audio={audio} />
      <audio ref={setAudio} controls src={file.url} aria-label={`Output ${file.path}`} />
      <figcaption>
        <code>{file.path}</code> <Download file={file} />
      </figcaption>
    </figure>
  );
}

export function VideoPlayer({ file }: { file: OutputFile }): ReactNode {
  return (
    <figure className="output-video">
      <video controls src={file.url} aria-label={`Output ${file.path}`} playsInline />
      <figcaption>
        <code>{file.path}</code>
        {file.width && file.height ? (
          <span className="muted">
            {" "}
            {file.width}×{file.height}
          </span>
        ) : null}{" "}
        <Download file={file} />
      </figcaption>
    </figure>
  );
}

export function OtherFile({ file }: { file: OutputFile }): ReactNode {
  return (
    <p className="output-file">
      <code>{file.path}</code> <Download file={file} />
    </p>
  );
}
