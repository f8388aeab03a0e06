/** The line a results table's markdown shows its chart with (the charts: src/charts.ts). */
export const chartLink = (name: string): string =>
  `![Chart of this table](charts/${name}.svg) (drawn from \`${name}.json\` by \`pnpm --filter @flexattn/bench charts\`)`;
