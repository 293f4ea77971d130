// The package's entry for dispatchers in other processes (`webhook-registry/dispatcher`):
// a replica of the routing table fed by the registry's change feed, Standard
// Webhooks signing, and the delivery-time address checks. Nothing here opens
// a store or starts a server.
export { createDispatchReplica } from './dispatch/replica.ts';
export type { DispatchReplica, DispatchReplicaOptions, ReplicaStats, ReplicaTarget } from './dispatch/replica.ts';
export { signPayload } from './dispatch/signing.ts';
export { checkDeliveryUrl, deliveryLookup } from './dispatch/deliveryLookup.ts';
export type { StandardWebhookHeaders } from './dispatch/signing.ts';
export { DeliveryAddressRefusedError } from './dispatch/deliveryLookup.ts';
