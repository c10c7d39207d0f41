// A page that does not exist: the top bar still works.

import { session } from "./api.js";
import { startPage } from "./layout.js";

if (session.key()) startPage();
