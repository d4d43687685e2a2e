/**
 * Copyable code for one exact input: curl against the queue, `@fal-ai/client` through the proxy
 * route, Python's `fal_client` pointed at this server, and where an app has an equivalent, the
 * `openai` and `replicate` SDKs at their routes here. The setups follow docs/api.md.
 * @module
 */

export interface SnippetInput {
  /** The server's origin, e.g. `http://127.0.0.1:8787`. */
  baseUrl: string;
  /** `owner/alias` or `owner/alias/path`. */
  endpointId: string;
  input: Record<string, unknown>;
  /** The app's category in `/v1/models`: which OpenAI call, if any, does the same. */
  category?: string;
}

/** The OpenAI call an app's root endpoint answers (docs/api.md, "OpenAI"), or null. */
export function openAiKindOf(category: string | undefined, endpointId: string): "speech" | "transcription" | "image" | null {
  if (endpointId.split("/").length > 2) return null;
  if (category === "text-to-speech") return "speech";
  if (category === "speech-to-text") return "transcription";
  if (category === "text-to-image") return "image";
  return null;
}

/** Quotes text for a POSIX shell: single quotes, with embedded ones closed and escaped. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

export function curlSnippet({ baseUrl, endpointId, input }: SnippetInput): string {
  const body = JSON.stringify(input, null, 2);
  return [
    `# Submit to the queue; FAL_KEY holds your Darkroom key (id:secret).`,
    `curl -s -X POST ${shellQuote(`${baseUrl}/queue/${endpointId}`)} \\`,
    `  -H "Authorization: Key $FAL_KEY" \\`,
    `  -H 'Content-Type: application/json' \\`,
    `  -d ${shellQuote(body)}`,
    `# Then GET the response_url from the answer (or its status_url for progress).`,
  ].join("\n");
}

function indent(text: string, by: string): string {
  return text.split("\n").map((line, i) => (i === 0 ? line : by + line)).join("\n");
}

export function javascriptSnippet({ baseUrl, endpointId, input }: SnippetInput): string {
  return [
    `import { createFalClient } from "@fal-ai/client";`,
    ``,
    `const fal = createFalClient({`,
    `  credentials: process.env.FAL_KEY, // your Darkroom key, "id:secret"`,
    `  proxyUrl: { url: ${JSON.stringify(`${baseUrl}/api/fal/proxy`)}, when: "always" },`,
    `});`,
    ``,
    `const result = await fal.subscribe(${JSON.stringify(endpointId)}, {`,
    `  input: ${indent(JSON.stringify(input, null, 2), "  ")},`,
    `  logs: true,`,
    `  onQueueUpdate: (update) => console.log(update.status),`,
    `});`,
    `console.log(result.data);`,
  ].join("\n");
}

/** A JSON value as a Python literal: JSON's string escapes are valid Python, its constants are not. */
export function pythonLiteral(value: unknown, level = 0): string {
  const pad = "    ".repeat(level + 1);
  const end = "    ".repeat(level);
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : "None";
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    return `[\n${value.map((v) => `${pad}${pythonLiteral(v, level + 1)},`).join("\n")}\n${end}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) return "{}";
  return `{\n${entries.map(([k, v]) => `${pad}${JSON.stringify(k)}: ${pythonLiteral(v, level + 1)},`).join("\n")}\n${end}}`;
}

/** fal_client's imports, then the URL settings of `fal_client.client` that point it at this server. */
function pythonClientSetup(urls: Readonly<Record<string, string>>): string[] {
  return [
    `import fal_client`,
    `import fal_client.client as fal_urls`,
    ``,
    `# Point fal_client at this server; FAL_KEY holds your Darkroom key (id:secret).`,
    ...Object.entries(urls).map(([name, url]) => `fal_urls.${name} = ${JSON.stringify(url)}`),
  ];
}

export function pythonSnippet({ baseUrl, endpointId, input }: SnippetInput): string {
  const ws = baseUrl.replace(/^http/, "ws");
  return [
    ...pythonClientSetup({
      RUN_URL_FORMAT: `${baseUrl}/run/`,
      QUEUE_URL_FORMAT: `${baseUrl}/queue/`,
      REALTIME_URL_FORMAT: `${ws}/run/`,
      REST_URL: `${baseUrl}/rest`,
      CDN_URL: `${baseUrl}/cdn`,
    }),
    ``,
    `result = fal_client.subscribe(`,
    `    ${JSON.stringify(endpointId)},`,
    `    arguments=${pythonLiteral(input, 1)},`,
    `    with_logs=True,`,
    `)`,
    `print(result)`,
  ].join("\n");
}

/** `owner/alias` and the realtime path of an endpoint id (`darkroom/echo/realtime`). */
function splitRealtime(endpointId: string): { app: string; path: string } {
  const parts = endpointId.split("/");
  return { app: parts.slice(0, 2).join("/"), path: parts.slice(2).join("/") || "realtime" };
}

/** A plain WebSocket, as fal's client opens it: a token (browsers cannot send the key), msgpack frames. */
export function realtimeJavascriptSnippet({ baseUrl, endpointId, input }: SnippetInput): string {
  const { app } = splitRealtime(endpointId);
  const ws = baseUrl.replace(/^http/, "ws");
  return [
    `import { decode, encode } from "@msgpack/msgpack";`,
    ``,
    `// A short-lived token for this app; FAL_KEY holds your Darkroom key (id:secret).`,
    `const token = await fetch(${JSON.stringify(`${baseUrl}/rest/tokens`)}, {`,
    `  method: "POST",`,
    `  headers: { Authorization: \`Key \${process.env.FAL_KEY}\`, "Content-Type": "application/json" },`,
    `  body: JSON.stringify({ allowed_apps: [${JSON.stringify(app)}] }),`,
    `}).then((r) => r.json());`,
    ``,
    `const ws = new WebSocket(\`${ws}/${endpointId}?fal_jwt_token=\${token}\`);`,
    `ws.binaryType = "arraybuffer";`,
    `// Results are msgpack (binary); timings and errors are JSON text.`,
    `ws.onmessage = (e) => console.log(typeof e.data === "string" ? JSON.parse(e.data) : decode(new Uint8Array(e.data)));`,
    `ws.onopen = () => ws.send(encode(${indent(JSON.stringify(input, null, 2), "")}));`,
  ].join("\n");
}

export function realtimePythonSnippet({ baseUrl, endpointId, input }: SnippetInput): string {
  const { app, path } = splitRealtime(endpointId);
  const ws = baseUrl.replace(/^http/, "ws");
  return [
    ...pythonClientSetup({ REALTIME_URL_FORMAT: `${ws}/run/`, REST_URL: `${baseUrl}/rest` }),
    ``,
    `with fal_client.realtime(${JSON.stringify(app)}${path === "realtime" ? "" : `, path=${JSON.stringify(`/${path}`)}`}) as connection:`,
    `    connection.send(${pythonLiteral(input, 1)})`,
    `    print(connection.recv())`,
  ].join("\n");
}

/** The `openai` SDK at /openai/v1, for an app that answers one of OpenAI's calls; null otherwise. */
export function openAiSnippet({ baseUrl, endpointId, input, category }: SnippetInput): string | null {
  const kind = openAiKindOf(category, endpointId);
  if (!kind) return null;
  const setup = [
    `import OpenAI, { toFile } from "openai";`,
    ``,
    `// OPENAI_API_KEY holds your Darkroom key (id:secret).`,
    `const openai = new OpenAI({ apiKey: process.env.OPENAI_API_KEY, baseURL: ${JSON.stringify(`${baseUrl}/openai/v1`)} });`,
    ``,
  ];
  const str = (key: string, fallback: string): string => JSON.stringify(typeof input[key] === "string" ? input[key] : fallback);
  if (kind === "speech") {
    return [
      ...setup,
      `const speech = await openai.audio.speech.create({`,
      `  model: ${JSON.stringify(endpointId)},`,
      `  input: ${str("text", "Hello there")},`,
      `  voice: ${str("voice", "alloy")},`,
      `  response_format: "wav",`,
      `});`,
      `const audio = Buffer.from(await speech.arrayBuffer());`,
      `console.log(\`\${audio.length} bytes of \${speech.headers.get("content-type")}\`);`,
    ].join("\n");
  }
  if (kind === "transcription") {
    return [
      ...setup,
      `const audio = await fetch(${str("audio_url", "https://example.com/speech.wav")}).then((r) => r.arrayBuffer());`,
      `const transcript = await openai.audio.transcriptions.create({`,
      `  model: ${JSON.stringify(endpointId)},`,
      `  file: await toFile(Buffer.from(audio), "speech.wav"),`,
      `  response_format: "verbose_json",`,
      `});`,
      `console.log(transcript.text);`,
    ].join("\n");
  }
  const size = input["image_size"] as { width?: number; height?: number } | undefined;
  return [
    ...setup,
    `const images = await openai.images.generate({`,
    `  model: ${JSON.stringify(endpointId)},`,
    `  prompt: ${str("prompt", "a photo of a cat")},`,
    ...(size && typeof size === "object" && size.width && size.height ? [`  size: ${JSON.stringify(`${size.width}x${size.height}`)},`] : []),
    ...(typeof input["seed"] === "number" ? [`  seed: ${String(input["seed"])}, // a Darkroom addition: the same seed, the same image`] : []),
    `});`,
    `console.log(images.data?.map((image) => image.url));`,
  ].join("\n");
}

/** The `replicate` SDK at /replicate/v1, for an app's root endpoint; null for another endpoint. */
export function replicateSnippet({ baseUrl, endpointId, input }: SnippetInput): string | null {
  if (endpointId.split("/").length > 2) return null;
  return [
    `import Replicate from "replicate";`,
    ``,
    `// REPLICATE_API_TOKEN holds your Darkroom key (id:secret).`,
    `const replicate = new Replicate({ auth: process.env.REPLICATE_API_TOKEN, baseUrl: ${JSON.stringify(`${baseUrl}/replicate/v1`)}, useFileOutput: false });`,
    ``,
    `const output = await replicate.run(${JSON.stringify(endpointId)}, {`,
    `  input: ${indent(JSON.stringify(input, null, 2), "  ")},`,
    `});`,
    `console.log(output);`,
  ].join("\n");
}

export type SnippetLanguage = "curl" | "javascript" | "python" | "openai" | "replicate";

export function snippet(language: SnippetLanguage, input: SnippetInput, realtime = false): string {
  if (realtime) return language === "python" ? realtimePythonSnippet(input) : realtimeJavascriptSnippet(input);
  switch (language) {
    case "curl":
      return curlSnippet(input);
    case "javascript":
      return javascriptSnippet(input);
    case "python":
      return pythonSnippet(input);
    case "openai":
      return openAiSnippet(input) ?? "";
    case "replicate":
      return replicateSnippet(input) ?? "";
  }
}
