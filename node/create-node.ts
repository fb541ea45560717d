import "../src/polyfills.js";
import { parseInput } from "../src/contract/parse-input.js";
import { RequirementsSchema } from "../src/contract/submit-options.js";
import { join } from "node:path";
import { multiaddr } from "@multiformats/multiaddr";
import { peerIdFromString } from "@libp2p/peer-id";
import { InviteBook, loadOrCreateDeviceIdentity } from "../identity/index.js";
import { dataPaths, resolveDataDir } from "../src/runtime/data-dir.js";
import { VERSION } from "../src/version.js";
import { LEASE_TIMEOUT_MS } from "../protocols/task/lease.js";
import { ClusterTransportAdapter } from "./cluster-adapter.js";
import { createMeshLibp2p, setRelayServing } from "./libp2p/create-libp2p.js";
import { dialAddresses } from "./libp2p/dial-addresses.js";
import { startReachability } from "./libp2p/reachability.js";
import { PortMappingStatus, type PortMappingReport } from "./libp2p/router-port-mapping.js";
import { keepListenPorts, listenWithKeptPorts } from "./libp2p/listen-ports.js";
import { doctorReport } from "./mesh/doctor.js";
import { startMemberRedial } from "./mesh/member-redial.js";
import { createAdmission } from "./mesh/admission.js";
import { foundMesh } from "./security/found-mesh.js";
import { importLegacyStatements } from "./mesh/legacy-statements.js";
import { Membership } from "./mesh/membership.js";
import { meshIdFile } from "./mesh/mesh-id-file.js";
import { PairingService } from "./mesh/pairing-service.js";
import { defaultNaming } from "./security/device-naming.js";
import { listPeers, trackLastSeen } from "./mesh/peer-list.js";
import { pingPeer } from "./mesh/peer-ping.js";
import { statementSyncService } from "./mesh/statement-sync.js";
import type { CoderClawNode, NodeOptions } from "./node-api.js";
import { openBlobStore } from "../src/workspace/blob-store.js";
import { DEFAULT_MANIFEST_LIMITS } from "../src/workspace/manifest.js";
import { blobService, type RunningBlobs } from "./workspaces/blob-service.js";
import { CodeWorkspaces, DEFAULT_RESULT_RETENTION_MS } from "./workspaces/code-workspaces.js";
import { SubmittedTrees } from "./workspaces/submitted-trees.js";
import { CodeUploads } from "./workspaces/code-uploads.js";
import { RecentChanges } from "./workspaces/recent-changes.js";
import { openTaskChanges } from "./workspaces/task-result.js";
import { announceRelayDoor, RelayDoors } from "./mesh/relay-doors.js";
import { SharedTrees } from "./workspaces/shared-trees.js";
import { ServedTrees } from "./registry/served-trees.js";
import { createNodeRegistry } from "./registry/node-registry.js";
import { createRequiredSkills } from "./registry/required-skills.js";
import { createPublishedAgents, withPublishedAgents, type PublishedAgents } from "./registry/published-agents.js";
import { createBuiltinRegistry } from "../src/agents/builtin.js";
import { SHELL_EXEC_SKILL } from "../src/agents/shell.js";
import { defaultSkillDirs, loadSkills } from "../src/agents/skills.js";
import { createNodeWorkflows } from "./workflows/node-workflows.js";
import { createNodeApprovals, type NodeApprovals } from "./workflows/node-approvals.js";
import { createTaskApprovals } from "./approvals/task-approvals.js";
import type { ApprovalStatementDeps } from "./approvals/approval-deps.js";
import type { ApprovalPolicy, OpenGate } from "../src/engine/approval-gate.js";
import { openNodeCore } from "./node-core.js";
import { NodeSecurity } from "./security/node-security.js";
import type { ServiceAuditEntry, ServiceContext } from "./services/mesh-service.js";
import { serviceList } from "./services/service-list.js";
import { syncService } from "./sync/sync-engine.js";
import { createLogPositions } from "../protocols/sync/log-positions.js";
import { createEchoTexts } from "../protocols/sync/echo-texts.js";
import { openTaskReplicas } from "./sync/task-replicas.js";
import { createPeerRateLimiter } from "../protocols/framing/index.js";
import { createLevelReplayStore } from "./tasks/replay-store.js";
import { Dispatcher } from "./scheduling/dispatcher.js";
import { taskClientService } from "./tasks/task-client.js";
import { taskServerService } from "./tasks/task-server.js";
import { auditReplicationService } from "./audit/audit-replicator.js";
import { capabilityService, localOffer } from "./routing/index.js";

export type { CoderClawNode, NodeOptions, PeerInfo, PingReport } from "./node-api.js";

/**
 * Start a mesh node: device identity, storage and task engine, libp2p behind
 * this node's admission, and its mesh services (pairing, signed statements,
 * document sync, capability records, the task protocol, audit replication, and
 * any given in `options.services`). Another Node app embeds a node with this
 * one call.
 */
export async function createNode(options: NodeOptions = {}): Promise<CoderClawNode> {
  // What the node advertises for placement, checked as a task's requirements are, before anything is opened.
  const placement = parseInput(RequirementsSchema, { ...(options.labels !== undefined && { labels: options.labels }), ...(options.resources !== undefined && { resources: options.resources }) });
  const dataDir = resolveDataDir(options.dataDir);
  const paths = dataPaths(dataDir);
  const identity = await loadOrCreateDeviceIdentity(dataDir);
  const meshId = meshIdFile(paths.identity);
  const report = (where: string) => (error: Error) => options.onError?.(where, error);
  // Code-carrying tasks: a content-addressed store, the trees this node serves, and the workspaces made from them.
  // Blobs are written without an fsync each (a 20k-file tree spent 10.5 s of its 16 s transfer in them): a killed process still leaves
  // every renamed blob whole, and one that power loss empties fails its digest check on read and is fetched again.
  const blobStore = await openBlobStore({ dir: join(dataDir, "blobs"), fsync: false, ...(options.blobQuotaBytes !== undefined && { quotaBytes: options.blobQuotaBytes }) });
  const sharedTrees = new SharedTrees();
  const submittedTrees = await SubmittedTrees.open(join(dataDir, "workspaces", "submitted"), (file, error) => report("workspaces")(new Error(`${file}: ${error.message}; removed, its tree is no longer served`)));
  const publishedTrees = await ServedTrees.open(blobStore);
  const blobsRef: { current?: RunningBlobs } = {};
  /** What the workspaces learn of the mesh once it runs: its id, who is connected, where refusals are audited. */
  const meshRef: { meshId?: () => string | undefined; connected?: () => string[]; audit?: (entry: ServiceAuditEntry) => void } = {};
  const codeLimits = options.code?.maxTreeBytes === undefined ? undefined : { ...DEFAULT_MANIFEST_LIMITS, maxTreeBytes: options.code.maxTreeBytes };
  const workspaces = new CodeWorkspaces({
    selfId: identity.peerId,
    signer: identity,
    meshId: () => meshRef.meshId?.(),
    connected: () => meshRef.connected?.() ?? [],
    audit: (entry) => meshRef.audit?.(entry),
    dataDir,
    store: blobStore,
    shared: sharedTrees,
    submitted: submittedTrees,
    client: () => blobsRef.current?.client,
    addSource: (source) => blobsRef.current?.service.server.addSource(source) ?? (() => undefined),
    ...(options.code?.agents !== undefined && { acceptAgents: options.code.agents }),
    ...(codeLimits !== undefined && { limits: codeLimits }),
    ...(options.code?.keepBytes !== undefined && { keepBytes: options.code.keepBytes }),
    ...(options.resultRetentionMs !== undefined && { resultRetentionMs: options.resultRetentionMs }),
  });
  await workspaces.sweep().catch(report("workspaces"));
  await workspaces.expireResults().catch(report("workspaces"));
  // Code sent over the HTTP API, per caller (code-uploads.ts).
  const uploads = new CodeUploads({ store: blobStore, adopt: (tree, manifest, pieces, artifacts, uploader) => workspaces.adoptUploaded(tree, manifest, pieces, artifacts, uploader), submitted: (uploader) => workspaces.uploadedHeld(uploader), ...(codeLimits !== undefined && { limits: codeLimits }) });
  await uploads.dropLeftovers().catch(report("workspaces"));
  // The policy and the approvals service come after the engine: tasks that reach it before (none: nothing listens yet) wait for no one.
  const approvalHooks: { policy?: ApprovalPolicy; asked?: (gate: OpenGate) => void } = {};
  const hooks = { approvalPolicy: ((request, by) => approvalHooks.policy?.(request, by)) as ApprovalPolicy, onApprovalNeeded: (gate: OpenGate) => approvalHooks.asked?.(gate) };
  // Agents published to the mesh join the node's own once the registry that takes them in runs.
  const publishedRef: { current?: PublishedAgents } = {};
  const ownAgents = options.agents ?? createBuiltinRegistry();
  const agents = withPublishedAgents(ownAgents, () => publishedRef.current);
  const core = await openNodeCore(dataDir, identity.peerId, { ...options, agents }, report("storage"), workspaces, hooks).catch(async (err: unknown) => {
    await blobStore.close();
    throw err;
  });
  // Results expire while the node runs too: checked a few times per retention, at most hourly.
  const expiry = setInterval(() => {
    void workspaces.expireResults().catch(report("workspaces"));
    void uploads.sweep().catch(report("workspaces"));
  }, Math.min(3600_000, Math.max(1000, (options.resultRetentionMs ?? DEFAULT_RESULT_RETENTION_MS) / 4)));
  expiry.unref();
  const stack: Array<() => unknown> = [() => blobStore.close(), () => core.close(), () => workspaces.close(), () => clearInterval(expiry)];
  const unwind = async (): Promise<void> => {
    for (const release of stack.splice(0).reverse()) await Promise.resolve(release()).catch(() => undefined);
  };
  try {
    const write = core.batcher.write.bind(core.batcher);
    const membership = await Membership.openStored({ db: core.db, write, identity, pinnedMeshId: meshId.read });
    stack.push(() => membership.close());
    await importLegacyStatements(core.store, membership.set);
    const security = await NodeSecurity.open({ db: core.db, set: membership.set, identity, membership, workspaceDir: options.workspaceDir ?? dataDir, sessionsFile: paths.sessions, write, agents: core.agents, ...(options.identityProviders && { providers: options.identityProviders }) });
    stack.push(() => security.close());
    /** Told once the security service has taken a change of the mesh's statements in. */
    const afterRefresh: Array<() => void> = [];
    stack.push(membership.onChange(() => void security.refresh().then(() => afterRefresh.forEach((f) => f()), report("security"))));
    const nameSelf = defaultNaming({ membership, security, identity }, report("naming"));
    stack.push(membership.onChange(nameSelf));
    nameSelf();
    const audit = (e: ServiceAuditEntry): void => void security.recordPeerEvent(e).catch(report("audit"));
    const admission = createAdmission({ members: membership, onError: report("keep-alive") });
    // Who may have written a document is a matter of membership, not of who this node talks to now: a member blocked here for a
    // while (cut off, misbehaving) is still the writer of its documents, and a member relaying them is no offender.
    const replicas = await openTaskReplicas({ core, identity, isMember: (peer) => membership.isMember(peer), onQuarantined: (id, reason) => audit({ action: "sync.refused", peer: identity.peerId, resource: id, result: "denied", reason }) });

    // Relaying for members' invites: the relay's gater asks it; it runs once libp2p and reachability do.
    const relayServing = (): boolean => libp2p.services.relay !== undefined && (!relayAuto || reachability.current().reachability === "public");
    const relayDoors = new RelayDoors({ serving: () => relayServing() });
    const portMappings = new PortMappingStatus();
    const portMapping = (): PortMappingReport => (options.upnp === true ? portMappings.report() : { state: "off", mappings: [] });
    const listenPorts = { file: join(paths.identity, "listen-ports.json"), onError: report("listen") };
    const listen = options.listen ?? ["/ip4/127.0.0.1/tcp/0"];
    const libp2p = await createMeshLibp2p({
      privateKey: identity.privateKey,
      listen: await listenWithKeptPorts(listen, listenPorts),
      ...(options.bootstrap && { bootstrap: options.bootstrap }),
      mdns: options.mdns ?? true,
      ...(options.inboundConnectionThreshold !== undefined && { inboundConnectionThreshold: options.inboundConnectionThreshold }),
      admit: admission.admits,
      isMember: admission.isMember,
      ...(options.relay !== undefined && { relay: options.relay, relayDoorOpen: (member) => relayDoors.isOpen(member) }),
      ...(options.reserveRelay !== undefined && { reserveRelay: options.reserveRelay }),
      ...(options.holePunch !== undefined && { holePunch: options.holePunch }),
      ...(options.upnp !== undefined && { upnp: options.upnp, portMappingStatus: portMappings }),
    });
    stack.push(() => libp2p.stop());
    await keepListenPorts(listen, libp2p.getMultiaddrs().map((a) => a.toString()), listenPorts);
    admission.attach(libp2p);
    const lastSeen = trackLastSeen(libp2p);
    const redial = await startMemberRedial({
      libp2p,
      members: () => membership.devices().map((d) => d.deviceId),
      isMember: admission.isMember,
      file: join(paths.identity, "member-addresses.json"),
      onError: report("redial"),
    });
    stack.push(() => redial.stop());
    const relayAuto = options.relay === "auto";
    const reachability = await startReachability({
      libp2p,
      isMember: admission.isMember,
      // A member others can dial relays for them without being told to; one they cannot reach would only take slots it cannot serve.
      onChange: (r) => relayAuto && void setRelayServing(libp2p, r.reachability === "public").catch(report("relay")),
    });
    stack.push(() => reachability.stop());

    const pairing = new PairingService({
      identity,
      membership,
      inviteBook: await InviteBook.openFile(join(paths.identity, "invites.json")),
      pinMesh: meshId.pin,
      statementsForJoiner: (joiner, level) => security.statementsForJoiner(joiner, level),
      // A joiner behind another NAT reaches this node only through its relays, which carry strangers to it while it invites.
      onInvite: async (expiresAt) => void (await announceRelayDoor(libp2p, expiresAt, (relay, error) => report("relay")(new Error(`telling relay ${relay} of the invite: ${error.message}`)))),
      onPairing: (e) => {
        options.onPairing?.(e);
        audit({ action: `pairing.${e.role}`, peer: e.peer ?? "(unknown)", result: e.ok ? "allowed" : "denied", reason: e.detail });
      },
    });
    const statements = statementSyncService(membership.set);
    const positions = createLogPositions(core.db, (ops) => core.store.write(ops), report("sync"));
    // A routed task's output, streamed from its executor and written into this node's document, is not sent back to it by sync.
    const echoes = createEchoTexts();
    const sync = syncService({ store: core.store, authority: replicas.authority, quarantine: replicas.quarantine, positions, echoes });
    const directory = capabilityService({ local: localOffer(core, options.maxConcurrentTasks ?? 10, placement, () => publishedRef.current?.unavailable() ?? {}), version: VERSION });
    /** The dispatcher, made once the services it needs are running; the task server reaches it through here. */
    const dispatcherRef: { current?: Dispatcher } = {};
    const server = taskServerService({
      engine: core.engine,
      agents: core.agents,
      authorize: options.authorize ?? ((submit) => security.authorizeSubmit(submit.peer, submit.envelope)),
      authorizeCancel: (peer, taskId) => security.authorizeCancel(peer, taskId),
      // A member's cancel of a task this node placed elsewhere goes through the dispatcher, as the node's own does.
      cancel: (taskId) => (dispatcherRef.current === undefined ? core.engine.cancel(taskId) : dispatcherRef.current.cancel(taskId)),
      replayStore: createLevelReplayStore({ db: core.db, write }),
      // A flooding member is cut off on its own channels; everyone else keeps being served.
      limiter: createPeerRateLimiter({ framesPerSecond: 5000, burst: 10_000 }),
      onStreamed: (peer, text) => echoes.sent(peer, text),
      ...(options.leaseIntervalMs !== undefined && { leaseIntervalMs: options.leaseIntervalMs }),
    });
    const client = taskClientService();
    const blobs = blobService({
      store: blobStore,
      shared: sharedTrees,
      published: publishedTrees,
      isRevoked: (deviceId) => membership.isRevoked(deviceId),
      publishedRefusal: (peer) => security.current.authorizer.trustRefusal(security.current.contextForDevice(peer, "remote")),
    });
    const auditReplication = auditReplicationService({ audit: security.audit });
    const connectedMembers = (): string[] => [...new Set(libp2p.getConnections().map((c) => c.remotePeer.toString()))].filter(admission.isMember);
    Object.assign(meshRef, { meshId: () => membership.meshId, connected: connectedMembers, audit });
    const services = serviceList([pairing, relayDoors, statements, sync, directory, server, client, blobs, auditReplication, ...(options.services ?? [])]);
    stack.push(() => services.stop());
    // A revoked or no-longer-trusted device is cut off wherever the statement reaches; a new member gets every protocol.
    const membersChanged = (): void => {
      admission.enforce();
      services.membersChanged();
    };
    const block = (peer: string, ms?: number): void => {
      admission.block(peer, ms);
      services.membersChanged();
    };
    const context: Omit<ServiceContext, "report"> = {
      libp2p,
      identity,
      isMember: admission.isMember,
      connectedMembers,
      meshId: () => membership.meshId,
      audit,
      block,
      openDoor: admission.openDoor,
    };
    await services.start(context, (where, error) => options.onError?.(where, error));
    blobsRef.current = blobs.running;
    await workspaces.restoreServed().catch(report("workspaces"));
    stack.push(membership.onChange(membersChanged));
    membersChanged();

    const dispatcher = (dispatcherRef.current = new Dispatcher({
      selfId: identity.peerId,
      engine: core.engine,
      agents: core.agents,
      client: client.running,
      members: () => directory.running.members(),
      isMember: admission.isMember,
      isConnected: (peer) => connectedMembers().includes(peer),
      reach: async (peer) => void (await libp2p.dial(peerIdFromString(peer), { signal: AbortSignal.timeout(3000) })),
      local: () => placement,
      // A task that carries code lets the member its attempt goes to read that code, and no one else.
      beforeAttempt: async (peer, request) => {
        const sent = await workspaces.grantFor(request, peer).catch((error: Error) => {
          // Granted in memory all the same: only a fetch after a restart of this node is refused.
          report("workspaces")(error);
          return undefined;
        });
        if (sent !== undefined) audit({ action: "task.code.send", peer, resource: sent.tree, result: "allowed", reason: `${sent.files} files, ${sent.bytes} bytes` });
        return workspaces.executorRequest(request, peer);
      },
      leaseTimeoutMs: options.leaseTimeoutMs ?? LEASE_TIMEOUT_MS,
      onMirrored: (peer, text) => echoes.received(peer, text),
      onError: (where, error) => options.onError?.(where, error),
    }));
    stack.push(() => dispatcher.stop());
    const onConnect = (): void => dispatcher.membersChanged();
    libp2p.addEventListener("peer:connect", onConnect);
    stack.push(() => libp2p.removeEventListener("peer:connect", onConnect));
    dispatcher.start();
    const adapter = new ClusterTransportAdapter({
      selfId: identity.peerId,
      engine: core.engine,
      agents: core.agents,
      directory: directory.running,
      client: client.running,
      dispatcher,
      connectedMembers,
      workspaces,
      ...(options.leaseTimeoutMs !== undefined && { leaseTimeoutMs: options.leaseTimeoutMs }),
    });
    const workflows = createNodeWorkflows({
      adapter,
      store: core.store,
      peerId: identity.peerId,
      authorize: (access) => security.authorizeOwner(access),
      record: (body) => security.record(body),
      onError: (error) => options.onError?.("workflows", error),
      onApproval: (event) => approvals.onEvent(event),
    });
    const approvalDeps: ApprovalStatementDeps = {
      set: membership.set,
      signer: identity,
      meshId: () => membership.meshId,
      canApprove: (deviceId) => security.current.checkPermission(security.current.contextForDevice(deviceId, "remote"), "task:approve"),
      record: (body) => security.record(body),
      onError: (error) => options.onError?.("approvals", error),
    };
    const approvals: NodeApprovals = createNodeApprovals({ ...approvalDeps, workflows });
    const taskApprovals = createTaskApprovals({ ...approvalDeps, engine: core.engine });
    // A task waits for a decision when this node's policy says so: its own submissions and what members send it alike.
    approvalHooks.policy = (request, by) => security.current.approvalFor(request.agentId ?? "echo", by ?? identity.peerId);
    approvalHooks.asked = (gate) => taskApprovals.asked(gate);
    stack.push(() => workflows.stop());
    stack.push(() => approvals.close());
    stack.push(() => taskApprovals.close());
    const skillDirs = defaultSkillDirs({ dataDir, ...(options.workspaceDir !== undefined && { workspaceDir: options.workspaceDir }) });
    const registry = createNodeRegistry({
      signer: identity,
      set: membership.set,
      meshId: () => membership.meshId,
      mayPublish: (deviceId) => security.current.checkPermission(security.current.contextForDevice(deviceId, "remote"), "registry:publish"),
      isAdmin: (deviceId) => security.current.grants.isAdmin(deviceId),
      store: blobStore,
      served: publishedTrees,
      client: () => blobsRef.current?.client,
      connectedMembers,
      // Where this node looks up the user's skills: an installed skill is found like one copied there by hand.
      skillsDir: skillDirs.find((d) => d.source === "user")!.path,
      skillsFound: () => loadSkills(skillDirs, process.env).map((s) => ({ name: s.info.name, dir: s.dir })),
      lockFile: join(dataDir, "skills.lock.json"),
      organisation: () => security.current.authorizer,
      record: (body) => security.record(body),
      onError: (error) => options.onError?.("registry", error),
    });
    stack.push(() => registry.close());
    // A required skill is installed once the policy, its publication and a member holding it are all in reach: any of them may come last.
    const required = createRequiredSkills({ registry, selfId: identity.peerId, record: (body) => security.record(body), onError: (error) => options.onError?.("registry", error) });
    const checkRequired = (): void => void required.check();
    afterRefresh.push(checkRequired);
    stack.push(membership.set.onAdded(checkRequired));
    libp2p.addEventListener("peer:connect", checkRequired);
    stack.push(() => libp2p.removeEventListener("peer:connect", checkRequired));
    stack.push(() => required.stop());
    checkRequired();
    const published = (publishedRef.current = createPublishedAgents({
      selfId: identity.peerId,
      catalogue: registry.catalogue,
      store: blobStore,
      served: publishedTrees,
      client: () => blobsRef.current?.client,
      connectedMembers,
      ownAgentIds: () => ownAgents.list().map((a) => a.info.id),
      skillsHere: () => [SHELL_EXEC_SKILL.name, ...loadSkills(skillDirs, process.env).flatMap((s) => (s.info.enabled ? [s.info.name] : []))],
      labelsHere: () => placement.labels ?? [],
      record: (body) => security.record(body),
      // The capability record lists what runs here: a new agent is offered (or a withdrawn one no longer) at once.
      onChange: () => void directory.running.publish().catch(report("registry")),
      onError: report("registry"),
    }));
    const refreshAgents = (): void => void published.refresh();
    afterRefresh.push(refreshAgents);
    stack.push(membership.set.onAdded(refreshAgents));
    libp2p.addEventListener("peer:connect", refreshAgents);
    stack.push(() => libp2p.removeEventListener("peer:connect", refreshAgents));
    refreshAgents();
    void taskApprovals.start().catch((error: Error) => options.onError?.("approvals", error));
    void workflows
      .resume()
      .then(() => approvals.catchUp())
      .catch((error: Error) => options.onError?.("workflows", error));
    let stopping: Promise<void> | undefined;
    return {
      peerId: identity.peerId,
      identity,
      dataDir,
      libp2p,
      core,
      membership,
      pairing,
      directory: directory.running,
      sync: sync.running,
      statementSet: membership.set,
      statements: statements.running,
      quarantine: replicas.quarantine,
      client: client.running,
      adapter,
      dispatcher,
      security,
      auditReplicator: auditReplication.running,
      workspaces,
      uploads,
      changes: new RecentChanges((taskId, sources) => openTaskChanges(adapter, workspaces, taskId, undefined, sources)),
      blobStore,
      blobs: blobs.running,
      workflows,
      approvals,
      taskApprovals,
      registry,
      publishedAgents: published,
      createMesh: (name) => foundMesh({ membership, security, identity }, name),
      multiaddrs: () => libp2p.getMultiaddrs().map((a) => a.toString()),
      dial: async (addr) => void (await dialAddresses(libp2p, multiaddr(addr), { signal: AbortSignal.timeout(10_000) })),
      peers: () => listPeers({ libp2p, directory: directory.running, membership }),
      ping: (peer, count) => pingPeer(libp2p, peer, count ?? 3),
      doctor: () =>
        doctorReport({
          libp2p,
          reachability: reachability.current,
          relayServing,
          portMapping,
          peers: () => listPeers({ libp2p, directory: directory.running, membership }),
        }),
      portMapping,
      lastSeen,
      block: (peer) => block(peer),
      unblock: admission.unblock,
      publish: () => directory.running.publish(),
      stop: () => (stopping ??= unwind()),
    };
  } catch (err) {
    await unwind();
    throw err;
  }
}
