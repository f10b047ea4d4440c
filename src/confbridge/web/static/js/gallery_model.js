// The gallery's rules without the page: which halls are on which page, what a tile says, and
// the roll call (điểm danh) that steps through the invited halls one by one.

/** Tiles per page (the bridge's `GALLERY_PAGE_TILES`). */
export const PAGE_SIZE = 25;

/** The halls connected now, in the site list's order. `views`: live status by site id. */
export function connectedHalls(halls, views) {
  return halls.filter((hall) => views[hall.id]?.state === "joined");
}

/** How many pages `count` halls fill (at least one, empty). */
export function pageCount(count, size = PAGE_SIZE) {
  return Math.max(1, Math.ceil(count / size));
}

/** `page` brought back into 0 .. pageCount - 1 (halls left, the last page emptied). */
export function clampPage(page, count, size = PAGE_SIZE) {
  return Math.min(Math.max(0, page), pageCount(count, size) - 1);
}

/** The halls of `page` (0-based). */
export function pageHalls(halls, page, size = PAGE_SIZE) {
  return halls.slice(page * size, (page + 1) * size);
}

/** The page that shows `siteId`, or null if it is not among `halls`. */
export function pageOf(halls, siteId, size = PAGE_SIZE) {
  const index = halls.findIndex((hall) => hall.id === siteId);
  return index < 0 ? null : Math.floor(index / size);
}

/** What a tile shows besides the picture, from the hall's live status. */
export function tileFlags(view) {
  return {
    absent: view?.state !== "joined",
    speaking: Boolean(view?.speaking),
    hand: Boolean(view?.hand),
    muted: Boolean(view?.muted),
    poor: view?.quality === "poor",
  };
}

/** The roll call: every invited hall in turn, connected or not (an absent hall is seen). */
export class RollCall {
  constructor(halls) {
    this.halls = [...halls];
    this.index = 0;
  }

  get current() {
    return this.halls[this.index] ?? null;
  }

  get position() {
    return this.index + 1;
  }

  get total() {
    return this.halls.length;
  }

  get first() {
    return this.index === 0;
  }

  get last() {
    return this.index >= this.halls.length - 1;
  }

  /** The next hall (the last one stays). */
  next() {
    if (!this.last) {
      this.index += 1;
    }
    return this.current;
  }

  /** The previous hall (the first one stays). */
  previous() {
    if (!this.first) {
      this.index -= 1;
    }
    return this.current;
  }
}
