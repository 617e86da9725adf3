/** What a Hand author imports for types: the Hand's manifest, capabilities and context (they live in runtime/core/hand.ts, free of runtime imports). */
export type * from '../../runtime/core/hand.ts';
