export { createMeshLibp2p, MESH_DHT_PROTOCOL, type AdmitPeer, type MeshLibp2p, type MeshLibp2pOptions, type MeshServices } from "./create-libp2p.js";
