// A state dict's `_metadata`: per module prefix ('' for the root, 'layer1.0'
// ...), the `version` of the module class that wrote it. PyTorch keeps it as
// an attribute of the OrderedDict; here it is a non-enumerable `_metadata`
// property of the object, so key iteration sees tensors only, while
// `stateDict()`, `save`, `load` and `loadStateDict` pass it along.

/** Module prefix -> that module's local metadata (`{ version: 2 }`). Cf. `state_dict._metadata`. */
export type StateDictMetadata = Record<string, Record<string, unknown>>;

/** The `_metadata` a state dict carries, or null. */
export function getMetadata(stateDict: object): StateDictMetadata | null {
  const d = Object.getOwnPropertyDescriptor(stateDict, '_metadata');
  const v = d?.value as unknown;
  return v !== null && typeof v === 'object' && !isTensorLike(v) ? (v as StateDictMetadata) : null;
}

function isTensorLike(v: object): boolean {
  return 'shape' in v && 'dtype' in v;
}

/** Attaches `_metadata` to `stateDict` (non-enumerable, as PyTorch's attribute is not a key). */
export function setMetadata<T extends object>(stateDict: T, metadata: StateDictMetadata | null): T {
  if (metadata === null) return stateDict;
  Object.defineProperty(stateDict, '_metadata', { value: metadata, enumerable: false, writable: true, configurable: true });
  return stateDict;
}
