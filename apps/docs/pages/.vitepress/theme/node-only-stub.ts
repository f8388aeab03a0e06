/** Stands in for the Node-only Dawn package (`webgpu`) in the browser bundle. */
export function create(): never {
  throw new Error("the webgpu (Dawn) package runs only in Node; in a browser flexattn uses navigator.gpu");
}
export const globals = {};
