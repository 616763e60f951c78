// TensorFlow.js, the optional peer dependencies of syncbn/tfjs, loaded once
// with an error that says how to install them. `require('syncbn')` never
// gets here: only the 'syncbn/tfjs' entry point loads this file.
import type * as TfCore from '@tensorflow/tfjs-core';
import type * as TfLayers from '@tensorflow/tfjs-layers';

function peer<T>(name: string): T {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return require(name) as T;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'MODULE_NOT_FOUND' && err.message.includes(`'${name}'`)) {
      throw new Error(`syncbn/tfjs needs ${name}, an optional peer dependency that is not installed: ` +
        'npm install @tensorflow/tfjs (or @tensorflow/tfjs-core and @tensorflow/tfjs-layers, 4.x)');
    }
    throw e;
  }
}

/** @tensorflow/tfjs-core, as the application installed it. */
export const tfc = peer<typeof TfCore>('@tensorflow/tfjs-core');
/** @tensorflow/tfjs-layers, as the application installed it. */
export const tfl = peer<typeof TfLayers>('@tensorflow/tfjs-layers');
