export function workspaceAliases(root: string): Record<string, string>;
