/** The median of a sample (the upper middle element for an even count), as every bench here reports it. */
export const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];
