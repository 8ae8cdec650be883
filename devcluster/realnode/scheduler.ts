/**
 * kube-scheduler (the process kubelet binds its pods itself; a real kubelet needs a scheduler):
 * no serving port, no leader election, the bootstrap identity system:kube-scheduler.
 */
import type { ManagedProcess, ProcessGroup } from '../processes.ts';

export function startScheduler(opts: {
  group: ProcessGroup;
  bin: string;
  kubeconfig: string;
  logPath: string;
}): Promise<ManagedProcess> {
  return opts.group.spawn(
    'kube-scheduler',
    opts.bin,
    [`--kubeconfig=${opts.kubeconfig}`, '--secure-port=0', '--leader-elect=false', '--v=1'],
    opts.logPath,
  );
}
