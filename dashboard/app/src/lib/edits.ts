/**
 * Attribution labels a campaign manager can read: the inference role names element edits
 * `element` + `edit` (inference/src/edits: `subject`/`recolor:silver`, `background`/`swap:white`,
 * `image`/`brightness:0.7`, `cell`/`occlude:1,2`, ...); these are the words shown for them.
 */
export function editName(element: string, edit: string): string {
  const [op, arg] = edit.split(':', 2) as [string, string | undefined];
  const factor = arg !== undefined ? Number(arg) : NaN;
  switch (`${element}/${op}`) {
    case 'subject/recolor':
      return `subject colour → ${arg}`;
    case 'subject/remove':
      return 'subject removed';
    case 'background/blur':
      return 'background blurred';
    case 'background/swap':
      return `background → plain ${arg}`;
    case 'text/remove':
      return 'text removed';
    case 'people/remove':
      return 'people removed';
    case 'frame/crop_subject':
      return 'cropped to the subject';
    case 'image/brightness':
      if (Number.isFinite(factor) && factor !== 1) return `image ${Math.round(Math.abs(factor - 1) * 100)}% ${factor < 1 ? 'darker' : 'brighter'}`;
      break;
    case 'cell/occlude':
      return `region ${arg ?? ''} hidden`.replace('  ', ' ');
  }
  return `${element} · ${edit.replace(/[_:]/g, ' ')}`;
}
