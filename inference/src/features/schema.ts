/**
 * Feature names and the feature-vector schema. `NAMED_FEATURES` is the stable list of interpretable
 * features the featurizer produces (all of them, for every image); a trained model stores the
 * `FeatureSchema` it was fitted on and `toVector` lays any asset's features out in those columns.
 */
import { COLOR_NAMES } from './colour.js';
import { META_FIELDS, type AssetFeatures, type FeatureSchema, type MetaField } from './types.js';

/** Interpretable features, with a one-line meaning each (for the dashboard and reports). */
export const FEATURE_DESCRIPTIONS: Readonly<Record<string, string>> = Object.freeze({
  'image.aspect': 'width / height',
  'image.log_aspect': 'ln(width / height)',
  'image.log_pixels': 'ln(source width x height)',
  'format.square': '1 when 0.8 <= aspect <= 1.25',
  'format.landscape': '1 when 1.25 < aspect < 3',
  'format.portrait': '1 when 1/3 < aspect < 0.8',
  'format.banner': '1 when aspect >= 3 or <= 1/3 (leaderboard, skyscraper)',
  'color.brightness': 'mean CIE L* / 100',
  'color.contrast': 'standard deviation of L* / 100 (RMS contrast)',
  'color.colourfulness': 'Hasler-Süsstrunk colourfulness / 100',
  'color.saturation': 'mean HSV saturation',
  ...Object.fromEntries(COLOR_NAMES.map((c) => [`color.share.${c}`, `share of the frame that is ${c}`])),
  'color.dominant.L': 'L* of the largest k-means colour cluster',
  'color.dominant.a': 'a* of the largest k-means colour cluster',
  'color.dominant.b': 'b* of the largest k-means colour cluster',
  'color.dominant.share': 'share of the frame in the largest colour cluster',
  'subject.present': '1 when the salient subject covers at least 2% of the frame',
  'subject.share': 'share of the frame that is the salient subject (ISNet mask mean)',
  'subject.box_share': 'share of the frame inside the subject bounding box',
  'subject.centroid_x': 'subject centre of mass, 0 = left, 1 = right',
  'subject.centroid_y': 'subject centre of mass, 0 = top, 1 = bottom',
  'subject.hue_sin': 'sin of the subject saturation-weighted mean hue',
  'subject.hue_cos': 'cos of the subject saturation-weighted mean hue',
  'subject.hue_strength': 'how concentrated the subject hue is (0 = mixed/grey, 1 = one hue)',
  'subject.saturation': 'mean HSV saturation of the subject',
  'subject.brightness': 'mean L* / 100 of the subject',
  'subject.colourfulness': 'Hasler-Süsstrunk colourfulness / 100 of the subject',
  ...Object.fromEntries(COLOR_NAMES.map((c) => [`subject.color.${c}`, `share of the subject that is ${c}`])),
  'background.brightness': 'mean L* / 100 outside the subject',
  'background.saturation': 'mean HSV saturation outside the subject',
  'background.colourfulness': 'Hasler-Süsstrunk colourfulness / 100 outside the subject',
  'people.present': '1 when a face was found (BlazeFace, score >= 0.8)',
  'people.faces': 'number of faces found',
  'people.face_share': 'share of the frame covered by the largest face',
  'people.share': 'share of the frame that is person (selfie segmentation), 0 when no face was found',
  'text.present': '1 when OCR found at least one text line',
  'text.area': 'share of the frame covered by OCR text boxes',
  'text.lines': 'number of OCR text lines',
  'text.words': 'number of recognised words',
  'text.chars': 'number of recognised characters',
});

export const NAMED_FEATURES: readonly string[] = Object.freeze(Object.keys(FEATURE_DESCRIPTIONS));

export interface BuildSchemaOptions {
  /** Bag-of-words vocabulary: at most this many words (default 64; 0 = none). */
  maxWords?: number;
  /** A word must appear in at least this many assets (default 2). */
  minWordAssets?: number;
  /** Include the embedding (default true). */
  embedding?: boolean;
  /** Metadata values seen in fewer assets are dropped (default 1). */
  minMetaAssets?: number;
}

/** The schema for a training set: every named feature, its metadata values, frequent words, the embedding. */
export function buildFeatureSchema(assets: readonly Pick<AssetFeatures, 'named' | 'meta' | 'words' | 'embedding'>[], options: BuildSchemaOptions = {}): FeatureSchema {
  const maxWords = options.maxWords ?? 64;
  const minWordAssets = options.minWordAssets ?? 2;
  const minMeta = options.minMetaAssets ?? 1;
  const named = [...NAMED_FEATURES];
  const extra = new Set<string>();
  for (const a of assets) for (const k of Object.keys(a.named)) if (!FEATURE_DESCRIPTIONS[k]) extra.add(k);
  named.push(...[...extra].sort());
  const meta = META_FIELDS.map((field: MetaField) => {
    const counts = new Map<string, number>();
    for (const a of assets) {
      const v = a.meta[field];
      if (v !== undefined && v !== '') counts.set(v, (counts.get(v) ?? 0) + 1);
    }
    return { field, values: [...counts].filter(([, c]) => c >= minMeta).map(([v]) => v).sort() };
  });
  const wc = new Map<string, number>();
  for (const a of assets) for (const w of new Set(a.words)) wc.set(w, (wc.get(w) ?? 0) + 1);
  const words = maxWords > 0
    ? [...wc].filter(([, c]) => c >= minWordAssets).sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1)).slice(0, maxWords).map(([w]) => w).sort()
    : [];
  const embeddingDims = options.embedding === false ? 0 : Math.max(0, ...assets.map((a) => a.embedding.length));
  return { version: 1, named, meta, words, embeddingDims };
}

/** Column names of a schema, in `toVector` order. */
export function schemaColumns(schema: FeatureSchema): string[] {
  return [
    ...schema.named,
    ...schema.meta.flatMap((m) => m.values.map((v) => `meta.${m.field}=${v}`)),
    ...schema.words.map((w) => `word=${w}`),
    ...Array.from({ length: schema.embeddingDims }, (_, i) => `emb.${i}`),
  ];
}

/** One asset's features in the schema's columns (missing named features -> NaN; unseen metadata -> zeros). */
export function toVector(features: Pick<AssetFeatures, 'named' | 'meta' | 'words' | 'embedding'>, schema: FeatureSchema): Float32Array {
  const nMeta = schema.meta.reduce((s, m) => s + m.values.length, 0);
  const out = new Float32Array(schema.named.length + nMeta + schema.words.length + schema.embeddingDims);
  let o = 0;
  for (const name of schema.named) out[o++] = features.named[name] ?? Number.NaN;
  for (const m of schema.meta) {
    const v = features.meta[m.field];
    for (const value of m.values) out[o++] = v === value ? 1 : 0;
  }
  const words = new Set(features.words);
  for (const w of schema.words) out[o++] = words.has(w) ? 1 : 0;
  if (schema.embeddingDims > 0) {
    if (features.embedding.length > 0 && features.embedding.length !== schema.embeddingDims) {
      throw new Error(`embedding has ${features.embedding.length} dims, the schema expects ${schema.embeddingDims}`);
    }
    if (features.embedding.length === 0) out.fill(Number.NaN, o, o + schema.embeddingDims);
    else out.set(features.embedding, o);
  }
  return out;
}
