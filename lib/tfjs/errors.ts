// The error tfjs-layers raises for a bad input or config (its own ValueError
// is not exported): the same name, so code that tells errors apart by name
// treats syncbn's alike.

/**
 * A bad input or configuration of a syncbn tfjs layer, named as tfjs-layers
 * names its own (`error.name === 'ValueError'`).
 *
 * @example
 * try { layer.apply(tf.zeros([2, 3], 'int32')); } catch (e) { e.name; } // 'ValueError'
 */
export class ValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValueError';
  }
}
