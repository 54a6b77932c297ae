// The one import the pages need: esbuild bundles it with its dependencies into dist/.
export { WebPubSubClient } from "@azure/web-pubsub-client";
