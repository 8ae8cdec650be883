/**
 * The devcluster's process kubelet: a TEST HARNESS standing in for a real kubelet (no container
 * runtime; containers are local processes). See docs/devcluster-kubelet.md.
 */
export type { ImageHandler, ImageRef, ImageResolution } from './imageTable.ts';
export { agentImageHandler, parseImageRef, shellImageHandler } from './imageTable.ts';
export type { ProcessKubelet, ProcessKubeletOptions } from './processKubelet.ts';
export { DEFAULT_NODE_NAME, startProcessKubelet } from './processKubelet.ts';
