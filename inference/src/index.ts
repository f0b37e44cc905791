/**
 * Inference workers land with the inference issue. The package exists now so the workspace
 * layout, build and `afterglow inference` entry are stable.
 */
export const INFERENCE_ROLE = 'inference' as const;
