/**
 * Source photos for the tie evaluation: real images from Debian packages (found, or fetched with
 * `apt-get download`, by ../../testing/images.ts), curated into "shoots":
 *
 * - one entry per distinct picture: of the many resolutions a wallpaper ships in, the largest;
 * - `family` groups pictures that are near-identical by design (a wallpaper's light and dark
 *   variants, the four colourways of one composition, a stereo pair): distinct masters that an
 *   engine must not confuse, the "hard negatives" beside the frames cut from one shoot;
 * - provenance (package, version, path, licence, credit) travels with every master generated.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { findPackagePhotos, type SamplePhoto } from '../images.js';

export interface SourcePhoto {
  /** Stable id, `<package>/<short path>`. */
  id: string;
  /** Short name for file names: letters, digits, dashes. */
  slug: string;
  path: string;
  package: string;
  packageVersion: string | undefined;
  license: string;
  copyright: string;
  /** Upstream licence note where the Debian stanza is package-wide (scikit-image data). */
  upstreamLicense?: string;
  /** Pictures of one family are near-identical by design (variants of one composition). */
  family: string;
}

/** Packages per dataset size. Short: the CI set (~36 MB of .debs). Full: ~210 MB (ukui-wallpapers since generator v5: without the overlay PNGs of mate-backgrounds the others give too few frames for 300 masters). */
export const SHORT_PACKAGES = ['lomiri-wallpapers-16.04', 'python3-skimage'] as const;
export const FULL_PACKAGES = ['lomiri-wallpapers-16.04', 'lomiri-wallpapers-20.04', 'mate-backgrounds', 'plasma-workspace-wallpapers', 'python3-skimage', 'ukui-wallpapers'] as const;

/** scikit-image's own statements for its sample photos (skimage/data/_fetchers.py); Debian's stanza is BSD-3-Clause for the package. */
const SKIMAGE_UPSTREAM: Record<string, string> = {
  'astronaut.png': 'public domain (NASA)',
  'chelsea.png': 'CC0 (Stefan van der Walt)',
  'coffee.png': 'CC0 (Rachel Michetti)',
  'hubble_deep_field.jpg': 'public domain (NASA)',
  'ihc.png': 'public domain',
  'motorcycle_left.png': 'no known copyright restrictions (Middlebury stereo dataset)',
  'motorcycle_right.png': 'no known copyright restrictions (Middlebury stereo dataset)',
  'retina.jpg': 'CC0 1.0',
  'rocket.jpg': 'public domain (SpaceX)',
};

/** Skipped: transparent or not a picture. */
const EXCLUDE = [/Arc-Colors-Transparent/i];

/** Files to families: pictures in one family are variants of one composition. */
function familyOf(p: SamplePhoto): string {
  const base = path.basename(p.path).replace(/\.[a-z]+$/i, '');
  if (p.package === 'plasma-workspace-wallpapers') {
    const m = /wallpapers\/([^/]+)\/contents\//.exec(p.path);
    return `plasma/${m?.[1] ?? base}`;
  }
  if (p.package === 'mate-backgrounds') {
    if (/^Ubuntu-Mate-/.test(base)) return 'mate/Ubuntu-Mate';
    if (/^MATE-Stripes-/.test(base)) return 'mate/MATE-Stripes';
    if (/^(Silk|Spring|Waves)$/.test(base)) return 'mate/swoosh';
    return `mate/${base.replace(/_\d+x\d+$/, '')}`;
  }
  if (p.package === 'python3-skimage' && /^motorcycle_/.test(base)) return 'skimage/motorcycle';
  return `${p.package}/${base}`;
}

/** Distinct pictures: the variant key of a file (same key = same picture at another resolution). */
function pictureKey(p: SamplePhoto): string {
  if (p.package === 'plasma-workspace-wallpapers') {
    const m = /wallpapers\/([^/]+)\/contents\/(images(?:_dark)?)\//.exec(p.path);
    // Portrait phone crops (e.g. 1080x1920) are other crops of the same picture: keep landscape only.
    return m ? `plasma/${m[1]}/${m[2]}` : p.id;
  }
  if (p.package === 'mate-backgrounds') return `mate/${path.basename(p.path).replace(/(_\d+x\d+)?\.[a-z]+$/i, '')}`;
  return p.id;
}

function pixelsOf(p: SamplePhoto): number {
  const m = /(\d{3,5})x(\d{3,5})\.[a-z]+$/i.exec(p.path);
  return m ? Number(m[1]) * Number(m[2]) : p.bytes; // file size as a proxy when the name has no size
}

function isPortraitVariant(p: SamplePhoto): boolean {
  const m = /(\d{3,5})x(\d{3,5})\.[a-z]+$/i.exec(p.path);
  return m ? Number(m[2]) > Number(m[1]) : false;
}

const versions = new Map<string, string | undefined>();
/** Installed version, else apt's candidate (the one `apt-get download` fetches). */
export function packageVersion(pkg: string): string | undefined {
  if (versions.has(pkg)) return versions.get(pkg);
  let v: string | undefined;
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format field, not a template
  const q = spawnSync('dpkg-query', ['-W', '-f', '${Version}', pkg], { encoding: 'utf8' });
  if (q.status === 0 && q.stdout.trim()) v = q.stdout.trim();
  else {
    const s = spawnSync('apt-cache', ['show', '--no-all-versions', pkg], { encoding: 'utf8' });
    v = /^Version:\s*(\S+)/m.exec(s.stdout ?? '')?.[1];
  }
  versions.set(pkg, v);
  return v;
}

/** The curated source photos of the given packages, sorted by id. */
export function findSourcePhotos(packages: readonly string[]): SourcePhoto[] {
  const out: SourcePhoto[] = [];
  for (const pkg of packages) {
    const photos = findPackagePhotos(pkg).filter((p) => !EXCLUDE.some((re) => re.test(p.path)));
    const best = new Map<string, SamplePhoto>();
    for (const p of photos) {
      if (pkg === 'plasma-workspace-wallpapers' && isPortraitVariant(p)) continue;
      const key = pictureKey(p);
      const cur = best.get(key);
      if (!cur || pixelsOf(p) > pixelsOf(cur)) best.set(key, p);
    }
    const version = best.size ? packageVersion(pkg) : undefined;
    for (const p of best.values()) {
      const base = path.basename(p.path);
      const key = pictureKey(p);
      const slugBase = pkg === 'plasma-workspace-wallpapers' ? key.split('/').slice(1).join('-').replace(/-images$/, '').replace(/-images_dark$/, '-dark') : base;
      out.push({
        id: p.id,
        slug: slugBase
          .replace(/\.[a-z]+$/i, '')
          .replace(/_by_.*$/, '')
          .replace(/[^A-Za-z0-9]+/g, '-')
          .replace(/^-|-$/g, '')
          .slice(0, 32),
        path: p.path,
        package: pkg,
        packageVersion: version,
        license: p.license,
        copyright: p.copyright,
        ...(pkg === 'python3-skimage' && SKIMAGE_UPSTREAM[base] ? { upstreamLicense: SKIMAGE_UPSTREAM[base] } : {}),
        family: familyOf(p),
      });
    }
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
