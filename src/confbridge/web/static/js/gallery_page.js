// The read-only gallery page: the halls' tiles and the site list, kept live; no floor.

import "/static/js/live.js";
import { mountGallery } from "/static/js/gallery.js";

window.gallery = mountGallery();
