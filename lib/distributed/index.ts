export { initProcessGroup, InitProcessGroupOptions, isInitialized, newGroup, destroyProcessGroup } from './init';
export {
  getRank,
  getWorldSize,
  getBackend,
  allReduce,
  allGather,
  broadcast,
  barrier,
  allReduceGradients,
  broadcastParameters,
  GroupOption,
  ParameterSource,
} from './collectives';
export { isGlooAvailable, isNcclAvailable } from './availability';
export { ProcessGroup, Backend, ReduceOp } from './process_group';
export { Store, TCPStore, StoreServer, FileStore, StoreTimeoutError } from './store';
export { spawn, spawnArgs, SpawnOptions, SpawnError } from './spawn';
