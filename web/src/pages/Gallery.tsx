/**
 * Every app on the server, from `/v1/models`: name, category, description, thumbnail, and whether
 * it can run (with the reason and remedy when not).
 * @module
 */
import { useMemo, useState, type ReactNode } from "react";
import type { ModelEntry } from "../api.js";
import { ErrorNotice, FilterField, Loading, Remedy, SelectFilter } from "../components/common.js";
import { useModels, useTitle } from "../hooks.js";
import { Link } from "../router.js";

const CATEGORY_GLYPHS: Record<string, string> = {
  "image-to-image": "◐",
  "image-analysis": "◎",
  "text-to-speech": "♪",
  "speech-to-text": "✎",
  "image-to-video": "▶",
  "video-to-video": "▶",
  "text-to-image": "✦",
  utility: "⚙",
};

/** A stable hue per category, so cards of one kind look alike without a thumbnail. */
function hueOf(text: string): number {
  let h = 0;
  for (const c of text) h = (h * 31 + c.charCodeAt(0)) % 360;
  return h;
}

function Thumbnail({ model }: { model: ModelEntry }): ReactNode {
  const [failed, setFailed] = useState(false);
  const url = model.metadata.thumbnail_url;
  if (url && !failed) return <img className="thumb" src={url} alt="" loading="lazy" onError={() => setFailed(true)} />;
  const hue = hueOf(model.metadata.category);
  return (
    <div className="thumb placeholder" aria-hidden="true" style={{ background: `linear-gradient(135deg, hsl(${hue} 45% 28%), hsl(${(hue + 40) % 360} 50% 16%))` }}>
      <span>{CATEGORY_GLYPHS[model.metadata.category] ?? model.metadata.display_name.charAt(0)}</span>
    </div>
  );
}

function Card({ model }: { model: ModelEntry }): ReactNode {
  const a = model.availability;
  return (
    <li className={`card${a.available ? "" : " unavailable"}`}>
      <Thumbnail model={model} />
      <div className="card-body">
        <h2 className="card-title">
          <Link href={`/app?id=${encodeURIComponent(model.endpoint_id)}`} className="card-link">
            {model.metadata.display_name}
          </Link>
        </h2>
        <p className="card-id">
          <code>{model.endpoint_id}</code>
        </p>
        <p className="card-meta">
          <span className="badge">{model.metadata.category}</span>
          {a.available ? <span className="badge ok">Available</span> : <span className="badge bad">Unavailable</span>}
        </p>
        <p className="card-description">{model.metadata.description}</p>
        {a.available ? null : (
          <p className="card-why">
            {a.reason}. <span className="muted">Remedy:</span> <Remedy remedy={a.remedy} />
          </p>
        )}
      </div>
    </li>
  );
}

export function Gallery(): ReactNode {
  useTitle("Gallery");
  const models = useModels();
  const [search, setSearch] = useState("");
  const [category, setCategory] = useState("");
  const categories = useMemo(() => [...new Set((models.data ?? []).map((m) => m.metadata.category))].sort(), [models.data]);
  const shown = useMemo(() => {
    const q = search.trim().toLowerCase();
    return (models.data ?? []).filter(
      (m) =>
        (!category || m.metadata.category === category) &&
        (!q || `${m.endpoint_id} ${m.metadata.display_name} ${m.metadata.description} ${m.metadata.tags.join(" ")}`.toLowerCase().includes(q)),
    );
  }, [models.data, search, category]);

  return (
    <div>
      <h1 tabIndex={-1}>Apps</h1>
      <div className="filters" role="search">
        <FilterField id="gallery-search" label="Search">
          <input id="gallery-search" type="search" value={search} onChange={(e) => setSearch(e.target.value)} placeholder="Name, tag, description" />
        </FilterField>
        <SelectFilter
          id="gallery-category"
          label="Category"
          value={category}
          onChange={setCategory}
          any="All"
          options={categories.map((c) => ({ value: c, label: c }))}
        />
      </div>
      {models.error ? <ErrorNotice error={models.error} onRetry={models.reload} /> : null}
      {!models.data && !models.error ? <Loading what="apps" /> : null}
      {models.data ? (
        <>
          <p className="muted small" aria-live="polite">
            {shown.length} of {models.data.length} apps
          </p>
          <ul className="cards" aria-label="Apps">
            {shown.map((m) => (
              <Card key={m.endpoint_id} model={m} />
            ))}
          </ul>
        </>
      ) : null}
    </div>
  );
}
