export {
  createStatementsCodec,
  haveMessage,
  idsMessage,
  itemsMessage,
  MAX_IDS_PER_MESSAGE,
  MAX_ITEM_BYTES,
  MAX_ITEMS_PER_MESSAGE,
  statementsMessage,
  STATEMENTS_PROTOCOL,
  STATEMENTS_VERSION,
  type StatementsMessage,
  type WireItem,
} from "./messages.js";
export { runStatementsSession, sendItems, type ItemSet, type RefusedItem } from "./session.js";
