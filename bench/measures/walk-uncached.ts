import { createTranslationOut, Smmuv3 } from '@vmmkit/smmuv3';
import { bareLpaeWalk as bareWalk, scatteredIovas, scatteredTables } from '@vmmkit/smmuv3/testing';
import { alternate, expect, type Measure } from '../measure.js';

const OPS = 1 << 16;

export const walkUncached: Measure = {
  id: 'walk-uncached',
  unit: 'walks/s',
  baseline: 'bare 4-level walk loop, plain numbers, same tables',
  target: 'ratio >= 0.5',
  meets: (r) => r.ratio! >= 0.5,
  method:
    '`Smmuv3.translateInto` with the IOTLB off (`iotlbEntries: 0`) and the CD cached, over a 4-level, 4K-granule LPAE table mapping 1 GiB with 4K pages (512 L3 tables scattered over a 16 MiB bank), 65,536 random IOVAs per batch; every walk checked to succeed. Baseline: a bare loop over the same tables and IOVAs — per level an index, one Uint32-pair descriptor read and the valid/type check, at the leaf AF and AP[2] and the PA. Timed in alternation, 9 slices each.',
  run() {
    const { memory, words, l0, ste, random } = scatteredTables();
    const iovas = scatteredIovas(random, OPS);
    const smmu = new Smmuv3({ memory, features: { iotlbEntries: 0 } });
    smmu.setStreamConfig(0, ste);
    const out = createTranslationOut();
    for (let i = 0; i < 64; i++) {
      expect(smmu.translateInto(0, -1, iovas[i]!, 0, out), 'the model translates the fixture');
      expect(out.pa === bareWalk(words, l0, iovas[i]!, 0), 'model and bare walk agree');
    }
    let modelSum = 0;
    let bareSum = 0;
    const model = () => {
      let ok = 0;
      for (let i = 0; i < OPS; i++) {
        if (smmu.translateInto(0, -1, iovas[i]!, 0, out)) {
          modelSum += out.pa;
          ok++;
        }
      }
      expect(ok === OPS, 'every model walk translates');
      return OPS;
    };
    const bare = () => {
      let ok = 0;
      for (let i = 0; i < OPS; i++) {
        const pa = bareWalk(words, l0, iovas[i]!, 0);
        if (pa >= 0) {
          bareSum += pa;
          ok++;
        }
      }
      expect(ok === OPS, 'every bare walk translates');
      return OPS;
    };
    const result = alternate(model, bare);
    expect(smmu.stats.cdCacheMisses <= 1, 'the CD stays cached');
    expect(modelSum > 0 && bareSum > 0, 'both loops produced addresses');
    return result;
  },
};
