/**
 * Real photos for tests and benchmarks, from Debian packages (licences recorded per file from each
 * package's DEP-5 `copyright`). Shared by the model tests and the tie evaluation.
 *
 * Lookup, per package:
 * 1. installed (`/var/lib/dpkg/info/<pkg>.list`), e.g. after `apt-get install -y <pkg>` in CI;
 * 2. previously extracted under the cache directory (`AFTERGLOW_SAMPLE_PHOTOS_DIR`, default
 *    `<tmpdir>/afterglow-sample-photos/<pkg>`);
 * 3. unless `AFTERGLOW_SAMPLE_PHOTOS_FETCH=0`: `apt-get download <pkg>` + `dpkg-deb -x` into that
 *    cache (no root, no dependencies installed; needs apt lists and the Debian mirror).
 *
 * Nothing is committed to git. Photos are files on disk; read them with fs.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { requireOrSkip } from './services.js';

export interface SamplePhoto {
  /** Unique, filesystem-safe: `<package>/<file name>`. */
  id: string;
  /** Absolute path of the image file. */
  path: string;
  package: string;
  /** Licence from the package's copyright file (DEP-5 `License:` of the matching `Files:` stanza). */
  license: string;
  /** `Copyright:` of that stanza (author/credit), possibly empty. */
  copyright: string;
  bytes: number;
}

/**
 * Packages known to hold real photographs (Debian bookworm), smallest first. The model tests use
 * `python3-skimage` (small CC0/public-domain photos: astronaut, coffee, chelsea, rocket, ...).
 */
export const PHOTO_PACKAGES = {
  /** scikit-image sample data: ~10 small colour photos (Debian: BSD-3-Clause; upstream CC0/public domain). */
  skimage: 'python3-skimage',
  /** 15 photos, CC-BY-4.0 / CC-BY-SA-4.0, ~1-2 MB JPEG each. */
  lomiri1604: 'lomiri-wallpapers-16.04',
  /** 4 photos/illustrations, CC-BY-SA. */
  lomiri2004: 'lomiri-wallpapers-20.04',
  /** MATE backgrounds (nature photos under nature/), GPL-2+. */
  mate: 'mate-backgrounds',
  /** KDE Plasma wallpapers (photos and renders), mostly CC-BY-SA / LGPL. */
  plasma: 'plasma-workspace-wallpapers',
} as const;

/** In python3-skimage only these data files are colour photographs (the rest are test patterns or greyscale). */
const SKIMAGE_PHOTOS = new Set([
  'astronaut.png',
  'coffee.png',
  'chelsea.png',
  'rocket.jpg',
  'hubble_deep_field.jpg',
  'retina.jpg',
  'motorcycle_left.png',
  'motorcycle_right.png',
  'ihc.png',
]);

const IMAGE_EXT = /\.(jpe?g|png|webp)$/i;

/**
 * Photos of one scene (a stereo pair, light/dark variants of one wallpaper): near-duplicates of each
 * other, so not "unrelated" in tests, and natural hard negatives for tying.
 */
export function shootGroup(photo: Pick<SamplePhoto, 'id'>): string {
  return photo.id
    .replace(/\.(jpe?g|png|webp)$/i, '')
    .replace(/[_-](left|right|l|d|light|dark)$/i, '')
    .replace(/\/contents\/images(_dark)?\/.*$/, '');
}

export function samplePhotosCacheDir(): string {
  return process.env.AFTERGLOW_SAMPLE_PHOTOS_DIR ?? path.join(os.tmpdir(), 'afterglow-sample-photos');
}

export interface FindOptions {
  /** Try `apt-get download` when not installed or cached (default: unless AFTERGLOW_SAMPLE_PHOTOS_FETCH=0). */
  fetch?: boolean;
  cacheDir?: string;
  /** Smallest image side in pixels and file size to accept (filters icons and thumbnails). Default 256 px is not checked here; bytes >= 20 kB. */
  minBytes?: number;
  /** Restrict to files whose path matches. */
  filter?: (relPath: string) => boolean;
}

/** Photos of one Debian package, sorted by id; [] when the package cannot be found or fetched. */
export function findPackagePhotos(pkg: string, options: FindOptions = {}): SamplePhoto[] {
  const root = locatePackage(pkg, options);
  if (!root) return [];
  const files = root.files.filter((f) => IMAGE_EXT.test(f) && !/screenshot|thumb|icon/i.test(f));
  const stanzas = parseDebianCopyright(root.copyright);
  const out: SamplePhoto[] = [];
  for (const abs of files) {
    const base = path.basename(abs);
    if (pkg === PHOTO_PACKAGES.skimage && (!SKIMAGE_PHOTOS.has(base) || !abs.includes('/skimage/data/'))) continue;
    if (options.filter && !options.filter(abs)) continue;
    let size: number;
    try {
      size = statSync(abs).size;
    } catch {
      continue;
    }
    if (size < (options.minBytes ?? 20_000)) continue;
    const lic = licenceFor(stanzas, abs, root.prefix);
    out.push({ id: `${pkg}/${relId(abs, root.prefix)}`, path: abs, package: pkg, license: lic.license, copyright: lic.copyright, bytes: size });
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Photos from several packages (default: python3-skimage). */
export function findSamplePhotos(packages: readonly string[] = [PHOTO_PACKAGES.skimage], options: FindOptions = {}): SamplePhoto[] {
  return packages.flatMap((p) => findPackagePhotos(p, options));
}

/**
 * For node:test: the photos, or undefined after skipping the test (locally) when fewer than `min`
 * are available. Under CI (any truthy CI) a missing photo set fails instead: CI must provide them.
 */
export function photosOrSkip(
  t: { skip: (msg?: string) => void },
  min: number,
  packages: readonly string[] = [PHOTO_PACKAGES.skimage],
): SamplePhoto[] | undefined {
  const photos = findSamplePhotos(packages);
  if (photos.length >= min) return photos;
  const failed = sampleFetchFailures(packages);
  const msg = `needs ${min} sample photos from Debian package(s) ${packages.join(', ')}; found ${photos.length} (install them, or allow apt-get download)${failed ? `; ${failed}` : ''}`;
  requireOrSkip(t, msg);
  return undefined;
}

interface Located {
  files: string[];
  copyright: string;
  /** Directory that the package's paths are relative to ('' for the installed system). */
  prefix: string;
}

function locatePackage(pkg: string, options: FindOptions): Located | undefined {
  if (!/^[a-z0-9][a-z0-9.+-]+$/.test(pkg)) throw new Error(`not a Debian package name: ${pkg}`);
  // 1. installed
  const list = `/var/lib/dpkg/info/${pkg}.list`;
  const copyright = `/usr/share/doc/${pkg}/copyright`;
  if (existsSync(list) && existsSync(copyright)) {
    const files = readFileSync(list, 'utf8')
      .split('\n')
      .filter((f) => f && existsSync(f) && statSync(f).isFile());
    if (files.length) return { files, copyright: readFileSync(copyright, 'utf8'), prefix: '' };
  }
  // 2. extracted before / 3. fetched now
  const cacheDir = options.cacheDir ?? samplePhotosCacheDir();
  const dir = path.join(cacheDir, pkg);
  const fetch = options.fetch ?? process.env.AFTERGLOW_SAMPLE_PHOTOS_FETCH !== '0';
  if (!existsSync(path.join(dir, '.complete')) && fetch) extractPackage(pkg, cacheDir);
  if (!existsSync(path.join(dir, '.complete'))) return undefined;
  const cp = path.join(dir, 'usr/share/doc', pkg, 'copyright');
  return { files: walk(dir), copyright: existsSync(cp) ? readFileSync(cp, 'utf8') : '', prefix: dir };
}

/** Why the last fetch of each package failed (apt-get/dpkg-deb output), for the message of a test that then lacks photos. */
const fetchFailures = new Map<string, string>();

/** Why `apt-get download` + `dpkg-deb -x` gave no photos for these packages, or '' when nothing failed. */
export function sampleFetchFailures(packages: readonly string[]): string {
  return packages.flatMap((p) => (fetchFailures.has(p) ? [`${p}: ${fetchFailures.get(p)}`] : [])).join('; ');
}

function extractPackage(pkg: string, cacheDir: string): void {
  const work = path.join(cacheDir, `.work-${pkg}-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const dl = spawnSync('apt-get', ['download', pkg], { cwd: work, encoding: 'utf8', timeout: 300_000 });
    const deb = dl.status === 0 ? readdirSync(work).find((f) => f.endsWith('.deb')) : undefined;
    if (!deb) {
      fetchFailures.set(pkg, `apt-get download failed (${dl.error?.message ?? `exit ${dl.status}`}): ${(dl.stderr ?? '').trim().split('\n').at(-1) ?? ''}`);
      return;
    }
    const out = path.join(work, 'root');
    const x = spawnSync('dpkg-deb', ['-x', path.join(work, deb), out], { encoding: 'utf8', timeout: 300_000 });
    if (x.status !== 0) {
      fetchFailures.set(pkg, `dpkg-deb -x failed (exit ${x.status}): ${(x.stderr ?? '').trim().split('\n').at(-1) ?? ''}`);
      return;
    }
    fetchFailures.delete(pkg);
    spawnSync('touch', [path.join(out, '.complete')]);
    const dest = path.join(cacheDir, pkg);
    if (!existsSync(path.join(dest, '.complete'))) {
      rmSync(dest, { recursive: true, force: true });
      try {
        renameSync(out, dest);
      } catch {
        /* another process won the race */
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) walk(p, out);
    else if (st.isFile()) out.push(p);
  }
  return out;
}

function relId(abs: string, prefix: string): string {
  const rel = prefix ? path.relative(prefix, abs) : abs.replace(/^\//, '');
  // Drop the common system prefixes so ids stay short and stable installed vs extracted.
  return rel.replace(/^usr\/(share|lib\/python3\/dist-packages)\//, '').replace(/[^A-Za-z0-9._/-]/g, '_');
}

interface Stanza {
  patterns: RegExp[];
  /** The globs' last path segments: copyright files name upstream source paths, packages install elsewhere. */
  basenames: RegExp[];
  /** `Files: *` (the package-wide default). */
  wildcard: boolean;
  license: string;
  copyright: string;
}

/** Minimal DEP-5 parser: `Files:` globs -> `License:` (first line) and `Copyright:`. */
export function parseDebianCopyright(text: string): Stanza[] {
  const stanzas: Stanza[] = [];
  for (const para of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let key: string | undefined;
    for (const line of para.split('\n')) {
      const m = /^([A-Za-z-]+):\s?(.*)$/.exec(line);
      if (m && !line.startsWith(' ')) {
        key = m[1]!.toLowerCase();
        fields.set(key, m[2]!.trim());
      } else if (key && line.startsWith(' ')) fields.set(key, `${fields.get(key)} ${line.trim()}`);
    }
    const files = fields.get('files');
    const license = fields.get('license');
    if (!files || !license) continue;
    stanzas.push({
      patterns: files.split(/\s+/).filter(Boolean).map(globToRegExp),
      basenames: files
        .split(/\s+/)
        .map((f) => f.split('/').pop() ?? '')
        .filter((b) => b.replace(/[*?]/g, '').length > 0)
        .map(globToRegExp),
      wildcard: files.split(/\s+/).includes('*'),
      license: license.split(/\s{2,}| \.( |$)/)[0]!.trim(),
      copyright: fields.get('copyright') ?? '',
    });
  }
  return stanzas;
}

function globToRegExp(g: string): RegExp {
  const re = g.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`(^|/)${re}$`);
}

function licenceFor(stanzas: Stanza[], abs: string, prefix: string): { license: string; copyright: string } {
  const rel = prefix ? path.relative(prefix, abs) : abs.replace(/^\//, '');
  const base = path.basename(abs);
  let found: Stanza | undefined;
  // DEP-5: the last matching stanza wins; `Files: *` matches everything. Exact paths first, then
  // the file name alone (upstream paths differ from installed ones).
  for (const s of stanzas) if (s.patterns.some((p) => p.test(rel))) found = s;
  const byName = stanzas.filter((s) => s.basenames.some((p) => p.test(base))).pop();
  if (byName && (!found || found.wildcard)) found = byName;
  return { license: found?.license ?? 'unknown (see the package copyright file)', copyright: found?.copyright ?? '' };
}
