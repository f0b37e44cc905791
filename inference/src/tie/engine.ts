/**
 * The tie engine (Knot-Tie, made fast): ads -> ranked master candidates with calibrated scores.
 *
 *   masters: bytes -> sha256 -> decode (bounded side) -> embeddings of its views and strips (cached by
 *            content) + ORB features
 *   ads:     bytes -> decode -> six views (+ windows of thin ads; ./views.ts) -> embeddings -> exact
 *            top-K masters by best-view cosine and euclidean distance (./similarity.ts; a thin ad's
 *            whole and halves also against the masters' strips) -> the top `verifyTop` by either
 *            list are verified with ORB + RANSAC (./orb.ts, worker threads) -> the best `denseTop`
 *            by that evidence are checked densely (./dense.ts: the ad's pixels located in each) ->
 *            calibrated score (./calibration.ts) -> top-N candidates; auto-tie when the best score
 *            reaches the calibrated threshold. Masters also get a grey whole view (greyscale and
 *            duotone ads); ads and masters a luminance-stretched grey view matched grey to grey
 *            (./grey.ts: duotone, greyscale, hue-shifted ads); the dense check compares luminance;
 *            a colour-free search adds candidates to verify (hue-shifted ads); ads no
 *            candidate verified strongly get more dense checks; with `multiMaster`, every master
 *            that wins a region of the ad is listed with that region (collages).
 *
 * Masters are added first (`addMasters`), then ads are tied in a streaming pipeline (`tieAds`):
 * several ads in flight so the embedder batches their views across ads while the ORB workers match
 * earlier ones; results come back in input order.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import sharp from 'sharp';
import { decodeImage, DEFAULT_IMAGE_LIMITS, probeImage } from '../models/image.js';
import { runtimeSpec } from '../models/manifest.js';
import type { Embedder, EmbeddingModelId, EmbeddingOutput, ImageLimits, RawImage, Rect, ResizeFit } from '../models/types.js';
import type { FeatureCache } from './cache.js';
import { autoTieOf, autoTiePolicy, bestCosine, loadCalibration, scoreCandidates, type AutoTiePolicy, type Calibration, type Evidence } from './calibration.js';
import { DEFAULT_ORB_PARAMS, describeSize, type Features, type OrbParams } from './orb.js';
import { OrbPool } from './orb-pool.js';
import { OrbVoteIndex } from './orb-index.js';
import { mergeRankings, searchTopK, type AdRanking, type Ranked, type VectorSet } from './similarity.js';
import { adViews, adWindows, masterStrips, masterViewCount, masterViews, STRIP_AD_VIEWS, TALL_STRIPS, thinness, WIDE_STRIPS, type MasterViewSet } from './views.js';
import { colourDims, colourHistogram, fuseColour } from './colour.js';
import { DEFAULT_DENSE_PARAMS, thumbSize, type DenseParams, type Thumb } from './dense.js';
import { applyWhitening, fitWhitening, type Whitening } from './whitening.js';
import { greyOf } from './grey.js';

export interface TieEngineOptions {
  embedder: Embedder;
  /** Default 'mobilenet_v2'. */
  model?: EmbeddingModelId;
  /**
   * Which model output describes images: 'descriptor' (earlier, ImageNet-only layers pooled; far better
   * for tying) or 'embedding' (the pooled last layer). Default: 'descriptor' when the model's manifest
   * entry declares one, else 'embedding'.
   */
  output?: EmbeddingOutput;
  /**
   * PCA-whiten descriptors to this many dimensions, learned without labels on the masters' and ads'
   * views (./whitening.ts); 0 = off. Default 384.
   */
  whitenDims?: number;
  /** Ads whose views are sampled to fit the whitening (per fit; default 512). */
  whitenFitAds?: number;
  /**
   * Eigenvalue shrinkage of the whitening, as a fraction of the mean kept eigenvalue (default 0.03:
   * on two generated sets, 0.03 x 384 dims gave mAP +1.0 / +1.9 over 0.1 x 256).
   */
  whitenShrinkage?: number;
  /** Sliding windows as extra views of thin ads (./views.ts `adWindows`; default true). */
  adWindows?: boolean;
  /** How the embedder fits views to its square input (default: the model's own, 'fill'). */
  fit?: ResizeFit;
  /** Masters kept per ad by embedding similarity (Knot-Tie: 500). */
  topK?: number;
  /** Candidates returned per ad (Knot-Tie: 20). */
  candidates?: number;
  /** Candidates verified with keypoints per ad: the top this many by cosine and by euclidean distance. */
  verifyTop?: number;
  orb?: Partial<OrbParams>;
  /** ORB worker threads (default: available cores). */
  workers?: number;
  /** Default: inference/tie.calibration.json (or the built-in default). */
  calibration?: Calibration;
  /** Overrides the calibration's auto-tie threshold. */
  autoTieThreshold?: number;
  /** Overrides the calibration's auto-tie margin over the runner-up. */
  autoTieMargin?: number;
  /** Overrides the calibration's keypoint inliers an auto-tie needs. */
  autoTieMinInliers?: number;
  /** Overrides how far below the ad's best cosine an auto-tied master's may be. */
  autoTieMaxCosineGap?: number;
  /** Images are decoded to at most this side before embedding and keypoints (default 1024). */
  decodeMaxSide?: number;
  /** Ads (or masters) in flight at once (default 12). */
  concurrency?: number;
  limits?: ImageLimits;
  /** Persistent cache of master ORB features (embeddings are cached by the embedder's cache). */
  featureCache?: FeatureCache;
  /** Views embedded per master (default 'centre': whole + central 70 %). */
  masterViews?: MasterViewSet;
  /**
   * Also embed the whole master mirrored left-right (default false). CNN descriptors are not
   * mirror-invariant: before colour histograms, flipped ads had recall@1 42 % (all ads: 68 %; v4 tie
   * set, descriptors only). With colour (mirror-invariant) this view moved mAP by -0.3 / +0.3 on two
   * generated sets for one more view per master, so it is off unless a tenant's ads flip a lot.
   */
  masterMirror?: boolean;
  /**
   * Also index the whole master in grey (its descriptor and grey histogram; default true): greyscale
   * and duotone ads meet it closer than the colour views, whose colours they lack.
   */
  masterGrey?: boolean;
  /**
   * Also embed the whole ad in grey with its luminance stretched (1st-99th percentile to black-white), and
   * stretch the masters' grey view the same way (default true; needs `masterGrey`). Duotone,
   * greyscale and hue-shifted ads keep their photo's luminance up to an affine map, which the stretch
   * undoes, so their grey view meets the true master's grey view where the colour views miss it.
   */
  adGrey?: boolean;
  /**
   * What the ad's grey view is compared with: every master row, the masters' grey view stretched too ('all');
   * or only a stretched grey view of each master kept apart from the index, whose grey row stays as it
   * was ('grey', default: on family A, stretching the indexed grey row cost R@20 and mAP).
   */
  adGreyMatch?: 'all' | 'grey';
  /**
   * Subtracted from a grey-to-grey similarity before it competes with the colour views' (with
   * `adGreyMatch` 'grey'; default ADGREY_PENALTY): grey views lack colour, so wrong masters meet
   * them closer than in colour.
   */
  adGreyPenalty?: number;
  /**
   * Strip views of every master (./views.ts `masterStrips`: four wide, one tall), compared only with
   * thin ads' whole and halves (default true). Five more CNN passes per master.
   */
  thinStrips?: boolean;
  /**
   * Weight of the views' colour histograms (./colour.ts) beside the descriptor in the similarity:
   * (cosine + w x colour) / (1 + w). Default 0.35; 0 = descriptor only.
   */
  colourWeight?: number;
  /**
   * Also verify the masters with the most ORB descriptor votes (./orb-index.ts), up to this many per
   * ad beyond the embedding's candidates (default 6; 0 = embeddings only choose).
   */
  voteTop?: number;
  /**
   * Candidates checked densely per ad (./dense.ts), the best by embedding and keypoint evidence
   * (default 8; 0 = off). Keypoints verify about a third of the true masters; the ad's pixels located
   * in the master separate the rest from sibling frames and look-alikes.
   */
  denseTop?: number;
  dense?: Partial<DenseParams>;
  /**
   * Check densely on luminance (both thumbnails grey; default false): the correlation of grey pixels is
   * unchanged by an affine change of luminance, so duotone, greyscale and re-graded ads correlate with
   * their master as untreated ones do. On family B it raised mAP by 1.3-2.3 on three seeds, but it
   * cost family A 0.7 (one ad's rank) with the calibration fitted on colour checks: off until refitted.
   */
  denseGrey?: boolean;
  /**
   * With colour on, also verify this many masters per ad from a second search that ignores colour (the
   * query's colour part zeroed; default 5; 0 = off). Greyscale, duotone and hue-shifted ads have
   * colours their master lacks, so the fused similarity pushes the master down; keypoints and the
   * dense check are colour-blind enough to lift it back once it is a candidate.
   */
  colourFreeTop?: number;
  /**
   * Candidates checked densely when keypoints verified none of the ad's candidates strongly (fewer than
   * DENSE_ORIENTATION_INLIERS inliers; default 20; never fewer than `denseTop`). Ads in styles the
   * keypoints miss (duotone, zoomed, thin) then get their ranking from the dense check over more of
   * the list; ads that verified keep the cheaper `denseTop`.
   */
  denseWeakTop?: number;
  /**
   * Look for several masters per ad (collages, split panels, carousels exported as one image): the ad's
   * regions (its views plus thirds along the long side) are searched one by one, and every master that
   * is the best of some region, above `multiMasterMinCosine` and not claiming an area another listed
   * master claims, is returned in `TieResult.masters` with that region. Default false (three more CNN
   * passes per ad; the thirds also count as views in the ad's ranking).
   */
  multiMaster?: boolean;
  /** A region's best master is listed from this fused cosine up (default MULTI_MASTER_MIN_COSINE). */
  multiMasterMinCosine?: number;
}

/**
 * Default floor of a listed master's region similarity: the 99th percentile of the best wrong master's
 * similarity over the regions of family A's single-master ads (`bench:tie -- --multi 1` prints it: 0.451 on
 * the short set, 111 region winners over 60 ads; fitted there,
 * never on the held-out family).
 */
export const MULTI_MASTER_MIN_COSINE = 0.45;
/** Default `adGreyPenalty`, chosen on family A (`--short`, seed 1: 0.05 cost mAP 1.7, 0.1 nothing; README, tying). */
export const ADGREY_PENALTY = 0.1;
/** Masters listed per ad at most. */
export const MULTI_MASTER_MAX = 5;

/** An image to tie: a name (the file name in the CLI contract) and its bytes or path. */
export interface AssetRef {
  name: string;
  path?: string;
  bytes?: Uint8Array;
}

export interface TieCandidate {
  master: string;
  /** Calibrated score in [0, 1]. */
  score: number;
  /** Best-view similarity: the cosine of the searched rows (the whitened descriptor fused with the view's colour histogram when `colourWeight` > 0). */
  cosine: number;
  /** Best-view euclidean distance. */
  euclidean: number;
  /** Verified with keypoints (else inliers/matches are 0). */
  verified: boolean;
  matches: number;
  inliers: number;
  /** The ad matched flipped left-right. */
  flipped: boolean;
  /** Dense verification score in [-1, 1] (./dense.ts), when the candidate was checked. */
  dense?: number;
}

export interface TieResult {
  ad: string;
  /** Best first, at most `candidates`. */
  candidates: TieCandidate[];
  autoTie: string | null;
  /** The two raw lists of the human interface (top `candidates` by cosine, by euclidean distance). */
  byCosine: Array<{ master: string; value: number }>;
  byEuclidean: Array<{ master: string; value: number }>;
  /** Set when the ad could not be processed (then candidates is empty). */
  error?: string;
  /** The whole ad's embedding (unit norm), e.g. for ad-to-ad duplicate search. */
  embedding?: Float32Array;
  /**
   * Every master found in the ad with its region (ad pixels, [x, y, w, h]), for ads built from
   * several masters; set only when the engine looks for several (`multiMaster`).
   */
  masters?: Array<{ master: string; box: [number, number, number, number]; score: number }>;
}

export interface TieProgress {
  phase: 'masters' | 'ads';
  done: number;
  total: number;
}

/** Time spent per stage, summed over items (stages overlap, so these add up to more than wall time). */
export interface TieTimings {
  mastersWallMs: number;
  /** Fitting the whitening (and re-projecting the index). */
  whitenMs: number;
  /** Wall time describing the ads sampled for the whitening before any search (part of adsWallMs). */
  adsSampleWallMs: number;
  adsWallMs: number;
  decodeMs: number;
  embedMs: number;
  featuresMs: number;
  searchMs: number;
  voteMs: number;
  matchMs: number;
  denseMs: number;
}

export class TieEngine {
  readonly model: EmbeddingModelId;
  readonly topK: number;
  readonly outputTop: number;
  readonly verifyTop: number;
  readonly voteTop: number;
  readonly denseTop: number;
  readonly colourFreeTop: number;
  readonly denseWeakTop: number;
  readonly multiMaster: boolean;
  readonly multiMasterMinCosine: number;
  readonly dense: DenseParams;
  readonly denseGrey: boolean;
  readonly orb: OrbParams;
  readonly calibration: Calibration;
  /** The auto-tie rule: the calibration's, with this engine's overrides. */
  readonly autoTie: AutoTiePolicy;
  readonly output: EmbeddingOutput;
  readonly whitenDims: number;
  readonly whitenFitAds: number;
  readonly whitenShrinkage: number;
  readonly adWindows: boolean;
  /** Ads whose dense check failed (they keep their embedding and keypoint ranking). */
  denseFailures = 0;
  readonly timings: TieTimings = { mastersWallMs: 0, whitenMs: 0, adsSampleWallMs: 0, adsWallMs: 0, decodeMs: 0, embedMs: 0, featuresMs: 0, searchMs: 0, voteMs: 0, matchMs: 0, denseMs: 0 };
  private readonly embedder: Embedder;
  private readonly fit: ResizeFit | undefined;
  private readonly decodeMaxSide: number;
  private readonly concurrency: number;
  private readonly limits: ImageLimits;
  private readonly featureCache: FeatureCache | undefined;
  readonly masterViewSet: MasterViewSet;
  readonly masterMirror: boolean;
  readonly masterGrey: boolean;
  readonly adGrey: boolean;
  readonly adGreyMatch: 'all' | 'grey';
  readonly adGreyPenalty: number;
  readonly colourWeight: number;
  readonly thinStrips: boolean;
  private readonly pool: OrbPool;
  private readonly masterNames: string[] = [];
  /** Per master: its views' embeddings, concatenated. */
  private readonly masterVectors: Float32Array[] = [];
  private readonly masterFeatures: Features[] = [];
  /** Per master: its dense verification thumbnail (empty when `denseTop` is 0). */
  private readonly masterThumbs: Thumb[] = [];
  /** Per master: its views' colour histograms, concatenated (empty when colour is off). */
  private readonly masterColours: Float32Array[] = [];
  /** Per master (with `thinStrips`): its strip views' embeddings and colours, `WIDE_STRIPS` then `TALL_STRIPS`. */
  private readonly masterStripVectors: Float32Array[] = [];
  private readonly masterStripColours: Float32Array[] = [];
  /** Per master (with `adGrey` matched grey to grey): its stretched grey whole view and its histogram. */
  private readonly masterGreyVectors: Float32Array[] = [];
  private readonly masterGreyColours: Float32Array[] = [];
  private index: VectorSet | undefined;
  /** Searched rows of the masters' strips, for wide and for tall thin ads. */
  private stripIndex: { wide: VectorSet; tall: VectorSet } | undefined;
  /** Searched rows of the masters' grey views alone (with `adGrey` matched to grey views only). */
  private greyIndex: VectorSet | undefined;
  /** Unlabelled ad views kept to fit the whitening (rows of the raw descriptor). */
  private adSample: Float32Array[] = [];
  private viewsSampled = 0;
  private rng = 1;
  private whitening: Whitening | undefined;
  /** Ad views the current whitening was fitted with. */
  private whitenedWithAds = -1;
  private votes: OrbVoteIndex | undefined;

  constructor(options: TieEngineOptions) {
    this.embedder = options.embedder;
    this.model = options.model ?? 'mobilenet_v2';
    this.output = options.output ?? (runtimeSpec(this.model).descriptor ? 'descriptor' : 'embedding');
    this.whitenDims = Math.max(0, options.whitenDims ?? 384);
    this.whitenFitAds = Math.max(0, options.whitenFitAds ?? 512);
    this.whitenShrinkage = Math.max(0, options.whitenShrinkage ?? 0.03);
    this.adWindows = options.adWindows ?? true;
    this.fit = options.fit;
    this.topK = Math.max(1, options.topK ?? 500);
    this.outputTop = Math.max(1, options.candidates ?? 20);
    this.verifyTop = Math.max(0, options.verifyTop ?? 5);
    this.voteTop = Math.max(0, options.voteTop ?? 6);
    this.denseTop = Math.max(0, options.denseTop ?? 8);
    this.colourFreeTop = Math.max(0, options.colourFreeTop ?? 5);
    this.multiMaster = options.multiMaster ?? false;
    this.multiMasterMinCosine = options.multiMasterMinCosine ?? MULTI_MASTER_MIN_COSINE;
    this.denseWeakTop = this.denseTop > 0 ? Math.max(this.denseTop, options.denseWeakTop ?? 20) : 0;
    this.dense = { ...DEFAULT_DENSE_PARAMS, ...(options.dense ?? {}) };
    this.denseGrey = options.denseGrey ?? false;
    this.orb = { ...DEFAULT_ORB_PARAMS, ...(options.orb ?? {}) };
    this.calibration = options.calibration ?? loadCalibration();
    this.autoTie = autoTiePolicy(this.calibration, {
      ...(options.autoTieThreshold !== undefined ? { threshold: options.autoTieThreshold } : {}),
      ...(options.autoTieMargin !== undefined ? { margin: options.autoTieMargin } : {}),
      ...(options.autoTieMinInliers !== undefined ? { minInliers: options.autoTieMinInliers } : {}),
      ...(options.autoTieMaxCosineGap !== undefined ? { maxCosineGap: options.autoTieMaxCosineGap } : {}),
    });
    this.decodeMaxSide = options.decodeMaxSide ?? 1024;
    this.concurrency = Math.max(1, options.concurrency ?? 12);
    this.limits = options.limits ?? DEFAULT_IMAGE_LIMITS;
    this.featureCache = options.featureCache;
    this.masterViewSet = options.masterViews ?? 'centre';
    this.masterMirror = options.masterMirror ?? false;
    this.masterGrey = options.masterGrey ?? true;
    this.adGrey = this.masterGrey && (options.adGrey ?? true);
    this.adGreyMatch = options.adGreyMatch ?? 'grey';
    this.adGreyPenalty = Math.max(0, options.adGreyPenalty ?? ADGREY_PENALTY);
    this.colourWeight = Math.max(0, options.colourWeight ?? 0.35);
    this.thinStrips = options.thinStrips ?? true;
    const cores = os.availableParallelism();
    this.pool = new OrbPool(options.workers ?? Math.max(1, cores));
  }

  /** Rows per master in the index: its views, then (with `masterMirror`) the whole master mirrored. */
  get viewsPerMaster(): number {
    return masterViewCount(this.masterViewSet) + (this.masterMirror ? 1 : 0) + (this.masterGrey ? 1 : 0);
  }

  private masterInputs(raw: RawImage, key: string, grey: RawImage | undefined): Array<{ raw: RawImage; crop: Rect; key: string; mirror?: boolean }> {
    const views = masterViews(raw.width, raw.height, this.masterViewSet).map((crop) => ({ raw, crop, key }));
    const out: Array<{ raw: RawImage; crop: Rect; key: string; mirror?: boolean }> = this.masterMirror ? [...views, { ...views[0]!, mirror: true }] : views;
    if (grey) out.push({ raw: grey, crop: views[0]!.crop, key: `${key}:grey${this.adGrey && this.adGreyMatch === 'all' ? ':stretched' : ''}` });
    return out;
  }

  /**
   * A master's colour rows, in `masterInputs` order: mirroring leaves a histogram unchanged, so the
   * mirrored whole reuses the whole's; the grey whole has its grey histogram.
   */
  private masterColourRows(raw: RawImage, grey: RawImage | undefined): Float32Array {
    const views = this.colours(raw, masterViews(raw.width, raw.height, this.masterViewSet));
    if (views.length === 0) return views;
    const cd = colourDims();
    const extra = (this.masterMirror ? 1 : 0) + (grey ? 1 : 0);
    const out = new Float32Array(views.length + extra * cd);
    out.set(views);
    if (this.masterMirror) out.set(views.subarray(0, cd), views.length);
    if (grey) out.set(this.colours(grey, [{ left: 0, top: 0, width: grey.width, height: grey.height }]), out.length - cd);
    return out;
  }

  /** Colour histograms of views, concatenated (empty when colour is off). */
  private colours(raw: RawImage, rects: readonly Rect[]): Float32Array {
    if (this.colourWeight === 0) return new Float32Array(0);
    const cd = colourDims();
    const out = new Float32Array(rects.length * cd);
    rects.forEach((r, i) => out.set(colourHistogram(raw, r), i * cd));
    return out;
  }

  /** Whitened descriptors, fused with the views' colours when colour is on: rows as searched. */
  private searchRows(data: Float32Array, count: number, colours: Float32Array): Float32Array {
    const projected = this.project(data, count);
    if (this.colourWeight === 0) return projected;
    return fuseColour(projected, projected.length / count, colours, colourDims(), this.colourWeight);
  }

  /** Master names, in index order. */
  get masters(): readonly string[] {
    return this.masterNames;
  }

  /**
   * Embeds and describes masters. A master that cannot be read or decoded is skipped and reported.
   * Can be called more than once (before or between `tieAds` calls).
   */
  async addMasters(refs: readonly AssetRef[], onProgress?: (p: TieProgress) => void): Promise<{ added: number; failed: Array<{ name: string; error: string }> }> {
    const t0 = performance.now();
    const failed: Array<{ name: string; error: string }> = [];
    const results: Array<MasterDescription | undefined> = new Array(refs.length);
    let done = 0;
    await forEachLimit(refs, this.concurrency, async (ref, i) => {
      try {
        results[i] = await this.describeMaster(ref);
      } catch (err) {
        failed.push({ name: ref.name, error: err instanceof Error ? err.message : String(err) });
      }
      onProgress?.({ phase: 'masters', done: ++done, total: refs.length });
    });
    let added = 0;
    refs.forEach((ref, i) => {
      const r = results[i];
      if (!r) return;
      this.masterNames.push(ref.name);
      this.masterVectors.push(r.vector);
      this.masterColours.push(r.colours);
      this.masterStripVectors.push(r.strips.vector);
      this.masterStripColours.push(r.strips.colours);
      if (r.stretchedGrey) {
        this.masterGreyVectors.push(r.stretchedGrey.vector);
        this.masterGreyColours.push(r.stretchedGrey.colours);
      }
      this.masterFeatures.push(r.features);
      if (r.thumb) this.masterThumbs.push(r.thumb);
      added++;
    });
    this.index = undefined;
    this.stripIndex = undefined;
    this.greyIndex = undefined;
    this.votes = undefined;
    this.whitening = undefined;
    this.timings.mastersWallMs += performance.now() - t0;
    return { added, failed };
  }

  /**
   * Ties ads to the masters added so far. `onResult` receives each result in input order as soon as
   * it and all before it are done (for streaming output).
   */
  async tieAds(refs: readonly AssetRef[], onResult?: (r: TieResult, index: number) => void | Promise<void>, onProgress?: (p: TieProgress) => void): Promise<TieResult[]> {
    const t0 = performance.now();
    // Phase 1 (whitening only): describe the first ads, add their views to the sample, (re)fit.
    const prepared = new Map<number, Prepared | Error>();
    const verifying = this.verifyTop > 0 && this.masterNames.length > 0;
    if (this.whitenDims > 0 && this.masterNames.length > 0) {
      const first = refs.slice(0, this.whitenFitAds);
      await forEachLimit(first, this.concurrency, async (ref, i) => {
        try {
          prepared.set(i, await this.prepareAd(ref, verifying));
        } catch (err) {
          prepared.set(i, err instanceof Error ? err : new Error(String(err)));
        }
      });
      for (const p of prepared.values()) if (!(p instanceof Error)) this.sampleAd(p.vectors);
      this.timings.adsSampleWallMs += performance.now() - t0;
    }
    const index = this.ensureIndex();
    const results: TieResult[] = new Array(refs.length);
    const ready: boolean[] = new Array(refs.length).fill(false);
    let emitted = 0;
    let done = 0;
    let emitting = Promise.resolve();
    const emit = () => {
      emitting = emitting.then(async () => {
        while (emitted < refs.length && ready[emitted]) {
          const i = emitted++;
          if (onResult) await onResult(results[i]!, i);
        }
      });
      return emitting;
    };
    await forEachLimit(refs, this.concurrency, async (ref, i) => {
      try {
        const pre = prepared.get(i);
        prepared.delete(i);
        if (pre instanceof Error) throw pre;
        const p = pre ?? (await this.prepareAd(ref, verifying));
        if (!pre) this.sampleAd(p.vectors);
        results[i] = await this.finishAd(ref, p, index);
      } catch (err) {
        results[i] = { ad: ref.name, candidates: [], autoTie: null, byCosine: [], byEuclidean: [], error: err instanceof Error ? err.message : String(err) };
      }
      ready[i] = true;
      onProgress?.({ phase: 'ads', done: ++done, total: refs.length });
      await emit();
    });
    await emit();
    this.timings.adsWallMs += performance.now() - t0;
    return results;
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  // -------------------------------------------------------------------------------------------------

  /** Keeps an ad's views for the whitening (the first `whitenFitAds` ads seen, then a reservoir). */
  private sampleAd(vectors: readonly Float32Array[]): void {
    if (this.whitenDims === 0 || this.whitenFitAds === 0) return;
    const cap = this.whitenFitAds * 8;
    for (const v of vectors) {
      this.viewsSampled++;
      if (this.adSample.length < cap) this.adSample.push(v);
      else {
        // Reservoir sampling (deterministic LCG): every view seen has the same chance to be kept.
        this.rng = (Math.imul(this.rng, 1103515245) + 12345) >>> 0;
        const slot = Math.floor((this.rng / 2 ** 32) * this.viewsSampled);
        if (slot < cap) this.adSample[slot] = v;
      }
    }
  }

  /** Vectors as searched: whitened when a whitening is fitted, else as the embedder gave them. */
  private project(data: Float32Array, count: number): Float32Array {
    return this.whitening ? applyWhitening(this.whitening, data, count) : data;
  }

  private ensureIndex(): VectorSet {
    // Refit the whitening when the ad sample doubled since the last fit (or masters changed).
    const sampleSize = this.adSample.length;
    const refit = this.whitenDims > 0 && this.masterVectors.length > 0 && (!this.whitening || sampleSize >= 2 * Math.max(1, this.whitenedWithAds));
    if (this.index && !refit) return this.index;
    const vpm = this.viewsPerMaster;
    const raw = this.masterVectors.length > 0 ? this.masterVectors[0]!.length / vpm : this.embedder.dims[this.model];
    if (refit) {
      const tw = performance.now();
      const rows: Float32Array[] = [];
      for (const v of this.masterVectors) for (let k = 0; k < vpm; k++) rows.push(v.subarray(k * raw, (k + 1) * raw));
      rows.push(...this.adSample);
      this.whitening = rows.length > 2 ? fitWhitening(rows, raw, { dims: this.whitenDims, shrinkage: this.whitenShrinkage }) : undefined;
      this.whitenedWithAds = sampleSize;
      this.timings.whitenMs += performance.now() - tw;
    }
    const d = (this.whitening ? this.whitening.dims : raw) + (this.colourWeight > 0 ? colourDims() : 0);
    const data = new Float32Array(this.masterVectors.length * vpm * d);
    this.masterVectors.forEach((v, i) => data.set(this.searchRows(v, vpm, this.masterColours[i]!), i * vpm * d));
    // Rows are unit-norm (embedder output or whitened then L2, fused with unit colour histograms): euclidean = sqrt(2 - 2 cos).
    this.index = { dims: d, count: this.masterVectors.length * vpm, data };
    this.stripIndex = this.thinStrips ? this.buildStripIndex(d) : undefined;
    this.greyIndex = undefined;
    if (this.adGrey && this.adGreyMatch === 'grey' && this.masterGreyVectors.length === this.masterVectors.length) {
      const n = this.masterGreyVectors.length;
      const grey = new Float32Array(n * d);
      this.masterGreyVectors.forEach((v, i) => grey.set(this.searchRows(v, 1, this.masterGreyColours[i]!), i * d));
      this.greyIndex = { dims: d, count: n, data: grey };
    }
    if (this.voteTop > 0) {
      this.votes = new OrbVoteIndex();
      this.masterFeatures.forEach((f, i) => this.votes!.add(i, f));
    }
    return this.index;
  }

  /** Searched rows of every master's strips (projected like the index), split by orientation. */
  private buildStripIndex(d: number): { wide: VectorSet; tall: VectorSet } {
    const nw = WIDE_STRIPS.length;
    const nt = TALL_STRIPS.length;
    const n = this.masterStripVectors.length;
    const wide = new Float32Array(n * nw * d);
    const tall = new Float32Array(n * nt * d);
    this.masterStripVectors.forEach((v, i) => {
      const rows = this.searchRows(v, nw + nt, this.masterStripColours[i]!);
      wide.set(rows.subarray(0, nw * d), i * nw * d);
      tall.set(rows.subarray(nw * d), i * nt * d);
    });
    return { wide: { dims: d, count: n * nw, data: wide }, tall: { dims: d, count: n * nt, data: tall } };
  }

  private async read(ref: AssetRef): Promise<Uint8Array> {
    if (ref.bytes) return ref.bytes;
    if (!ref.path) throw new Error(`asset ${ref.name} has neither bytes nor path`);
    return new Uint8Array(await readFile(ref.path));
  }

  private async decode(bytes: Uint8Array): Promise<RawImage> {
    const t = performance.now();
    try {
      return await decodeImage(bytes, this.limits, { maxSide: this.decodeMaxSide });
    } finally {
      this.timings.decodeMs += performance.now() - t;
    }
  }

  private async embed(inputs: Parameters<Embedder['embed']>[0]): Promise<Float32Array[]> {
    const t = performance.now();
    try {
      return await this.embedder.embed(inputs, this.model, { output: this.output, ...(this.fit ? { fit: this.fit } : {}) });
    } finally {
      this.timings.embedMs += performance.now() - t;
    }
  }

  private async gray(raw: RawImage, role: 'master' | 'ad'): Promise<{ gray: Uint8Array; width: number; height: number }> {
    const { width, height } = describeSize(raw.width, raw.height, role, this.orb);
    const buf = await sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: raw.channels } })
      .resize(width, height, { fit: 'fill', kernel: 'lanczos3' })
      .greyscale()
      .raw()
      .toBuffer();
    return { gray: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), width, height };
  }

  /** RGB thumbnail for dense verification (./dense.ts). */
  private async thumb(raw: RawImage, role: 'master' | 'ad'): Promise<Thumb> {
    const { width, height } = thumbSize(raw.width, raw.height, role, this.dense);
    const { data, info } = await sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: raw.channels } })
      .resize(width, height, { fit: 'fill' })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`dense thumbnail has ${info.channels} channels, expected 3`);
    const rgb = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return { data: this.denseGrey ? greyOf({ data: rgb, width, height, channels: 3 }).data : rgb, width, height };
  }

  private orbKey(sha: string): string {
    const p = this.orb;
    return `orb:v1:${sha}:${this.decodeMaxSide}:${p.nFeatures}:${p.masterSide}`;
  }

  private async describeMaster(ref: AssetRef): Promise<MasterDescription> {
    const bytes = await this.read(ref);
    const sha = createHash('sha256').update(bytes).digest('hex');
    const raw = await this.decode(bytes);
    const key = `${sha}:d${this.decodeMaxSide}`;
    const cached = this.featureCache?.get(this.orbKey(sha));
    const sharedStretch = this.adGrey && this.adGreyMatch === 'all';
    const grey = this.masterGrey ? greyOf(raw, sharedStretch) : undefined;
    const stretched = this.adGrey && !sharedStretch ? greyOf(raw, true) : undefined;
    const inputs = this.masterInputs(raw, key, grey);
    const whole = { left: 0, top: 0, width: raw.width, height: raw.height };
    const extra = stretched ? [{ raw: stretched, crop: whole, key: `${key}:grey:stretched` }] : [];
    const colours = this.masterColourRows(raw, grey);
    const strips = this.thinStrips ? [...masterStrips(raw.width, raw.height, 'wide'), ...masterStrips(raw.width, raw.height, 'tall')] : [];
    const [vectors, features, thumb] = await Promise.all([
      this.embed([...inputs, ...strips.map((crop) => ({ raw, crop, key })), ...extra]),
      cached
        ? Promise.resolve(cached)
        : (async () => {
            const g = await this.gray(raw, 'master');
            const t = performance.now();
            const f = (await this.pool.features(g.gray, g.width, g.height, this.orb, false)).features;
            this.timings.featuresMs += performance.now() - t;
            this.featureCache?.set(this.orbKey(sha), f);
            return f;
          })(),
      this.denseTop > 0 ? this.thumb(raw, 'master') : Promise.resolve(undefined),
    ]);
    // The master's views, concatenated (rows of the index), then its strips.
    const d = vectors[0]!.length;
    const concat = (vs: Float32Array[]) => {
      const out = new Float32Array(vs.length * d);
      vs.forEach((v, i) => out.set(v, i * d));
      return out;
    };
    return {
      vector: concat(vectors.slice(0, inputs.length)),
      colours,
      strips: { vector: concat(vectors.slice(inputs.length, inputs.length + strips.length)), colours: this.colours(raw, strips) },
      ...(stretched ? { stretchedGrey: { vector: vectors[inputs.length + strips.length]!, colours: this.colours(stretched, [whole]) } } : {}),
      features,
      thumb,
    };
  }

  /** Decode, views, descriptors and keypoints of one ad. */
  private async prepareAd(ref: AssetRef, verifying: boolean): Promise<Prepared> {
    const bytes = await this.read(ref);
    const sha = createHash('sha256').update(bytes).digest('hex');
    const raw = await this.decode(bytes);
    const base = this.adWindows ? [...adViews(raw.width, raw.height), ...adWindows(raw.width, raw.height)] : adViews(raw.width, raw.height);
    const views = this.multiMaster ? [...base, ...thirds(raw.width, raw.height)] : base;
    // Regions are reported in the ad's own pixels (the decoded image may be smaller).
    const probed = this.multiMaster ? await probeImage(bytes, this.limits) : undefined;
    const scale = probed ? Math.max(probed.width, probed.height) / Math.max(raw.width, raw.height) : 1;
    const key = `${sha}:d${this.decodeMaxSide}`;
    const whole = { left: 0, top: 0, width: raw.width, height: raw.height };
    const grey = this.adGrey ? greyOf(raw, true) : undefined;
    const colours = grey ? concatRows([this.colours(raw, views.map((v) => v.rect)), this.colours(grey, [whole])]) : this.colours(raw, views.map((v) => v.rect));
    const inputs = views.map((v) => ({ raw, crop: v.rect, key }));
    if (grey) inputs.push({ raw: grey, crop: whole, key: `${key}:grey:stretched` });
    const [vectors, adFeatures, thumb] = await Promise.all([
      this.embed(inputs),
      verifying
        ? (async () => {
            const g = await this.gray(raw, 'ad');
            const t = performance.now();
            // As is only: the worker describes the flipped ad from its grey image when a match tries it
            // (most ads verify as they are), so the grey image is kept (a copy: features() transfers it).
            const kept = { gray: g.gray.slice(), width: g.width, height: g.height };
            const f = await this.pool.features(g.gray, g.width, g.height, this.orb, false);
            this.timings.featuresMs += performance.now() - t;
            return { features: f.features, gray: kept };
          })()
        : Promise.resolve(undefined),
      this.denseTop > 0 ? this.thumb(raw, 'ad') : Promise.resolve(undefined),
    ]);
    const regions = this.multiMaster ? [...views.map((v) => v.rect), ...(grey ? [whole] : [])] : undefined;
    return { vectors, colours, adFeatures, thumb, thin: thinness(raw.width, raw.height), regions, scale };
  }

  /**
   * One ad against the masters: search (searchAd), pick the candidates (candidateSet), verify the
   * best by keypoints (verifyKeypoints), score and rank them (rankCandidates), report (candidateList).
   */
  private async finishAd(ref: AssetRef, prepared: Prepared, index: VectorSet): Promise<TieResult> {
    const { vectors, adFeatures, thumb, regions, scale } = prepared;
    const verifying = this.verifyTop > 0 && index.count > 0;
    const { q, nv, ranking, colourFree } = this.searchAd(prepared, index);
    const cos = ranking.cosine;
    const euc = ranking.euclidean;
    const { verify, rest } = this.candidateSet(cos, euc, colourFree, verifying, adFeatures);
    const evidence = verifying && adFeatures && verify.length > 0 ? await this.verifyKeypoints(adFeatures, verify) : new Map<number, VerifiedEvidence>();
    const all = [...verify, ...rest];
    const cosAt = new Map<number, number>();
    cos.index.forEach((m, r) => cosAt.set(m, cos.value[r]!));
    const eucAt = new Map<number, number>();
    euc.index.forEach((m, r) => eucAt.set(m, euc.value[r]!));
    const { ev, scores, order } = await this.rankCandidates(all, cosAt, eucAt, evidence, thumb);
    const candidates = this.candidateList(all, order, ev, scores, eucAt, evidence);
    return {
      ad: ref.name,
      candidates,
      autoTie: autoTieOf(this.autoTie, candidates, bestCosine(ev)) ? candidates[0]!.master : null,
      byCosine: Array.from(cos.index.subarray(0, this.outputTop), (m, r) => ({ master: this.masterNames[m]!, value: cos.value[r]! })),
      byEuclidean: Array.from(euc.index.subarray(0, this.outputTop), (m, r) => ({ master: this.masterNames[m]!, value: euc.value[r]! })),
      embedding: vectors[0],
      ...(regions ? { masters: this.mastersByRegion(index, q, nv, regions, scale, order.length > 0 ? { master: all[order[0]!]!, cosine: ev[order[0]!]!.cosine } : undefined) } : {}),
    };
  }

  /** Exact top-K of the ad's views by best view (a thin ad's strips too), and the same search without colour. */
  private searchAd(prepared: Prepared, index: VectorSet): { q: Float32Array; nv: number; ranking: AdRanking; colourFree: Int32Array | undefined } {
    const { vectors, colours, thin } = prepared;
    // Exact top-K by best view.
    const ts = performance.now();
    const raw = vectors[0]!.length;
    const nv = vectors.length;
    const flat = new Float32Array(nv * raw);
    vectors.forEach((v, i) => flat.set(v, i * raw));
    const q = this.searchRows(flat, nv, colours);
    // The ad's grey view (its last row) meets only the masters' grey views, in a search of its own.
    const greyRow = this.greyIndex && this.adGrey ? nv - 1 : -1;
    const nm = greyRow >= 0 ? nv - 1 : nv;
    let [ranking] = searchTopK(index, { dims: index.dims, count: nm, data: q.subarray(0, nm * index.dims) }, nm, this.topK, { viewsPerMaster: this.viewsPerMaster });
    if (greyRow >= 0) {
      const d = index.dims;
      const [byGrey] = searchTopK(this.greyIndex!, { dims: d, count: 1, data: q.subarray(greyRow * d, (greyRow + 1) * d) }, 1, this.topK, { viewsPerMaster: 1 });
      const p = this.adGreyPenalty;
      // Unit rows: a cosine lowered by p is a squared distance raised by 2p.
      const penalised = {
        cosine: { ...byGrey!.cosine, value: byGrey!.cosine.value.map((v) => v - p) },
        euclidean: { ...byGrey!.euclidean, value: byGrey!.euclidean.value.map((v) => Math.sqrt(v * v + 2 * p)) },
      };
      ranking = mergeRankings(ranking!, penalised, this.topK, [greyRow]);
    }
    if (thin && this.stripIndex && nv >= STRIP_AD_VIEWS.length) {
      // A thin ad's whole and halves also meet the masters' strips of its orientation; a master keeps its better value.
      const strips = this.stripIndex[thin];
      const d = index.dims;
      const sq = new Float32Array(STRIP_AD_VIEWS.length * d);
      STRIP_AD_VIEWS.forEach((v, i) => sq.set(q.subarray(v * d, (v + 1) * d), i * d));
      const per = thin === 'wide' ? WIDE_STRIPS.length : TALL_STRIPS.length;
      const [byStrips] = searchTopK(strips, { dims: d, count: STRIP_AD_VIEWS.length, data: sq }, STRIP_AD_VIEWS.length, this.topK, { viewsPerMaster: per });
      ranking = mergeRankings(ranking!, byStrips!, this.topK, STRIP_AD_VIEWS);
    }
    // The same search without colour: the query rows' colour part zeroed (descriptor cosine only).
    let colourFree: Int32Array | undefined;
    if (this.colourWeight > 0 && this.colourFreeTop > 0) {
      const d = index.dims;
      const cd = colourDims();
      const qf = q.slice();
      for (let v = 0; v < nv; v++) qf.fill(0, v * d + d - cd, (v + 1) * d);
      [colourFree] = searchTopK(index, { dims: d, count: nv, data: qf }, nv, this.colourFreeTop, { viewsPerMaster: this.viewsPerMaster }).map((r) => r.cosine.index);
    }
    this.timings.searchMs += performance.now() - ts;
    return { q, nv, ranking: ranking!, colourFree };
  }

  /** Candidate set: the verified ones (top by either list, colour-free list, votes) and enough of the cosine list to fill the output. */
  private candidateSet(cos: Ranked, euc: Ranked, colourFree: Int32Array | undefined, verifying: boolean, adFeatures: Prepared['adFeatures']): { verify: number[]; rest: number[] } {
    const verify: number[] = [];
    const seen = new Set<number>();
    const take = (list: Int32Array, n: number, into: number[]) => {
      for (let r = 0; r < Math.min(n, list.length); r++) {
        const m = list[r]!;
        if (!seen.has(m)) {
          seen.add(m);
          into.push(m);
        }
      }
    };
    if (verifying) {
      take(cos.index, this.verifyTop, verify);
      take(euc.index, this.verifyTop, verify);
      if (colourFree) take(colourFree, this.colourFreeTop, verify);
      if (this.votes && adFeatures) {
        const tv = performance.now();
        const v = this.votes.vote(adFeatures.features, undefined);
        const ranked = Array.from(v.keys()).filter((m) => v[m]! >= 2).sort((a, b) => v[b]! - v[a]! || a - b);
        let added = 0;
        for (const m of ranked) {
          if (added >= this.voteTop) break;
          if (!seen.has(m)) {
            seen.add(m);
            verify.push(m);
            added++;
          }
        }
        this.timings.voteMs += performance.now() - tv;
      }
    }
    const rest: number[] = [];
    take(cos.index, this.outputTop, rest);
    take(euc.index, this.outputTop, rest);
    return { verify, rest };
  }

  /** Keypoint evidence (matches, inliers, orientation) for the masters to verify. */
  private async verifyKeypoints(adFeatures: NonNullable<Prepared['adFeatures']>, verify: number[]): Promise<Map<number, VerifiedEvidence>> {
    const evidence = new Map<number, VerifiedEvidence>();
    const tm = performance.now();
    const res = await this.pool.match(adFeatures.features, undefined, verify.map((m) => this.masterFeatures[m]!), this.orb, adFeatures.gray);
    this.timings.matchMs += performance.now() - tm;
    verify.forEach((m, i) => evidence.set(m, { cosine: 0, matches: res[i]!.matches, inliers: res[i]!.inliers, flipped: res[i]!.flipped, verified: true }));
    return evidence;
  }

  /** Scores every candidate and ranks them; the best are checked densely and everything rescored. */
  private async rankCandidates(
    all: number[],
    cosAt: Map<number, number>,
    eucAt: Map<number, number>,
    evidence: Map<number, VerifiedEvidence>,
    thumb: Thumb | undefined,
  ): Promise<{ ev: Evidence[]; scores: number[]; order: number[] }> {
    const ev: Evidence[] = all.map((m) => ({
      cosine: cosAt.get(m) ?? cosineFromEuclid(eucAt.get(m)),
      matches: evidence.get(m)?.matches ?? 0,
      inliers: evidence.get(m)?.inliers ?? 0,
    }));
    let scores = scoreCandidates(this.calibration, ev);
    const rank = () => all.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]! || ev[b]!.cosine - ev[a]!.cosine || all[a]! - all[b]!);
    let order = rank();
    if (this.denseTop > 0 && thumb && this.masterThumbs.length === this.masterNames.length) {
      // The best by embedding and keypoint evidence are checked densely, then everything is rescored.
      // A master that verified strongly tells which way round the ad is (a sibling frame too: it is the ad that is mirrored).
      let strongest: (Evidence & { flipped: boolean }) | undefined;
      for (const e of evidence.values()) if (e.inliers >= DENSE_ORIENTATION_INLIERS && e.inliers > (strongest?.inliers ?? 0)) strongest = e;
      const checked = order.slice(0, strongest ? this.denseTop : this.denseWeakTop);
      const td = performance.now();
      try {
        const dense = await this.pool.dense(thumb, checked.map((i) => this.masterThumbs[all[i]!]!), this.dense, strongest?.flipped);
        checked.forEach((i, k) => (ev[i]!.dense = dense[k]!));
        scores = scoreCandidates(this.calibration, ev);
        order = rank();
      } catch {
        // Extra evidence only: an ad whose check failed keeps its embedding and keypoint ranking.
        this.denseFailures++;
      }
      this.timings.denseMs += performance.now() - td;
    }
    return { ev, scores, order };
  }

  /** The reported candidates, best first. */
  private candidateList(all: number[], order: number[], ev: Evidence[], scores: number[], eucAt: Map<number, number>, evidence: Map<number, VerifiedEvidence>): TieCandidate[] {
    return order.slice(0, this.outputTop).map((i) => {
      const m = all[i]!;
      const e = evidence.get(m);
      return {
        master: this.masterNames[m]!,
        score: scores[i]!,
        cosine: ev[i]!.cosine,
        euclidean: eucAt.get(m) ?? Math.sqrt(Math.max(0, 2 - 2 * ev[i]!.cosine)),
        verified: e?.verified ?? false,
        matches: e?.matches ?? 0,
        inliers: e?.inliers ?? 0,
        flipped: e?.flipped ?? false,
        ...(ev[i]!.dense !== undefined ? { dense: ev[i]!.dense } : {}),
      };
    });
  }

  /**
   * Several masters in one ad: each region searched alone; a region's best master is listed (with the
   * region as its box) when similar enough, not listed already, and its region does not mostly
   * overlap a listed master's. The ad's best candidate (`top`, by every evidence) is listed whatever its
   * similarity, with its best region (the whole ad when it wins none). Best first.
   */
  private mastersByRegion(index: VectorSet, q: Float32Array, nv: number, regions: readonly Rect[], scale: number, top: { master: number; cosine: number } | undefined): NonNullable<TieResult['masters']> {
    const perRegion = searchTopK(index, { dims: index.dims, count: nv, data: q }, 1, 1, { viewsPerMaster: this.viewsPerMaster });
    const winners = perRegion.map((r, i) => ({ master: r.cosine.index[0]!, cosine: r.cosine.value[0]!, rect: regions[i]! })).filter((b) => b.master !== undefined);
    const best = winners.filter((b) => b.cosine >= this.multiMasterMinCosine || b.master === top?.master).sort((a, b) => b.cosine - a.cosine);
    const out: Array<{ master: number; cosine: number; rect: Rect }> = [];
    if (top && !best.some((b) => b.master === top.master)) out.push({ master: top.master, cosine: top.cosine, rect: regions[0]! });
    for (const b of best) {
      if (out.length >= MULTI_MASTER_MAX) break;
      if (out.some((o) => o.master === b.master)) continue;
      if (out.some((o) => overlapArea(o.rect, b.rect) > 0.5 * Math.min(area(o.rect), area(b.rect)))) continue;
      out.push(b);
    }
    return out.sort((a, b) => b.cosine - a.cosine).map((o) => ({
      master: this.masterNames[o.master]!,
      box: [Math.round(o.rect.left * scale), Math.round(o.rect.top * scale), Math.round(o.rect.width * scale), Math.round(o.rect.height * scale)],
      score: Math.round(o.cosine * 1e4) / 1e4,
    }));
  }
}

function area(r: Rect): number {
  return r.width * r.height;
}

function overlapArea(a: Rect, b: Rect): number {
  const w = Math.min(a.left + a.width, b.left + b.width) - Math.max(a.left, b.left);
  const h = Math.min(a.top + a.height, b.top + b.height) - Math.max(a.top, b.top);
  return w > 0 && h > 0 ? w * h : 0;
}

/** Thirds of the ad along its long side (a collage of three in a row or a column). */
function thirds(width: number, height: number): Array<{ rect: Rect }> {
  const wide = width >= height;
  const long = wide ? width : height;
  return [0, 1, 2].map((k) => {
    const a = Math.floor((k * long) / 3);
    const b = Math.max(a + 1, Math.floor(((k + 1) * long) / 3));
    return { rect: wide ? { left: a, top: 0, width: b - a, height } : { left: 0, top: a, width, height: b - a } };
  });
}

/**
 * Keypoint inliers from which a verified master's orientation is trusted for the dense check (one
 * orientation searched instead of two); chance consensus sets are smaller.
 */
const DENSE_ORIENTATION_INLIERS = 15;

/** One ad described, before search and verification. */
/** Keypoint evidence for a master, as verifyKeypoints finds it. */
type VerifiedEvidence = Evidence & { flipped: boolean; verified: boolean };

interface Prepared {
  vectors: Float32Array[];
  /** The views' colour histograms, concatenated (empty when colour is off). */
  colours: Float32Array;
  /** ORB features as is, and the grey image they came from (for a flipped description on demand). */
  adFeatures: { features: Features; gray: { gray: Uint8Array; width: number; height: number } } | undefined;
  /** RGB thumbnail for dense verification (undefined when `denseTop` is 0). */
  thumb: Thumb | undefined;
  /** A thin ad's orientation (./views.ts `thinness`): its whole and halves are also compared with the masters' strips. */
  thin: 'wide' | 'tall' | undefined;
  /** With `multiMaster`: every view's rect (decoded pixels), in `vectors` order, and ad pixels per decoded pixel. */
  regions: Rect[] | undefined;
  scale: number;
}

/** A master described: its views' rows (searched), their colours, its strips (empty without `thinStrips`) and keypoints. */
interface MasterDescription {
  vector: Float32Array;
  colours: Float32Array;
  strips: { vector: Float32Array; colours: Float32Array };
  stretchedGrey?: { vector: Float32Array; colours: Float32Array };
  features: Features;
  thumb: Thumb | undefined;
}

function concatRows(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** For unit embeddings: cos = 1 - d^2 / 2. */
function cosineFromEuclid(d: number | undefined): number {
  return d === undefined ? -1 : 1 - (d * d) / 2;
}

async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const run = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
}

/** Shorthand: a `TieEngine`. Close it when done. */
export function createTieEngine(options: TieEngineOptions): TieEngine {
  return new TieEngine(options);
}
