import { describe, expect, it } from 'vitest';
import { editPatch } from '../../campaign/faults.ts';

describe('campaign faults: metadata edits', () => {
  it("every edit of a holder is bound to its UID, so it never lands on a pod recreated under the holder's name", () => {
    const target = { uid: 'u-1', primitive: 'Lease/lock' };
    for (const edit of ['remove-label', 'edit-annotation', 'add-annotation'])
      expect(editPatch(edit, target).metadata.uid).toBe('u-1');
    expect(editPatch('edit-annotation', target).metadata).toEqual({
      uid: 'u-1',
      annotations: { 'konductor.io/lease': 'elsewhere' },
    });
  });
});
