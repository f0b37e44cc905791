/** Light, dark, or the system's: stored, applied as <html data-theme>, and readable by charts. */

export type ThemeChoice = 'auto' | 'light' | 'dark';
const KEY = 'afterglow.theme';

class Theme {
  choice = $state<ThemeChoice>(load());
  private systemDark = $state(matchMedia('(prefers-color-scheme: dark)').matches);
  /** The theme in effect. */
  resolved = $derived<'light' | 'dark'>(this.choice === 'auto' ? (this.systemDark ? 'dark' : 'light') : this.choice);

  constructor() {
    matchMedia('(prefers-color-scheme: dark)').addEventListener('change', (e) => (this.systemDark = e.matches));
    apply(this.choice);
  }

  set(choice: ThemeChoice): void {
    this.choice = choice;
    apply(choice);
    try {
      localStorage.setItem(KEY, choice);
    } catch {
      // Private mode.
    }
  }

  cycle(): void {
    this.set(this.choice === 'auto' ? 'light' : this.choice === 'light' ? 'dark' : 'auto');
  }
}

function load(): ThemeChoice {
  try {
    const v = localStorage.getItem(KEY);
    if (v === 'light' || v === 'dark' || v === 'auto') return v;
  } catch {
    // Private mode.
  }
  return 'auto';
}

function apply(choice: ThemeChoice): void {
  if (choice === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = choice;
}

export const theme = new Theme();

/** A CSS custom property of the page, for canvas drawing (uPlot). */
export function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}
