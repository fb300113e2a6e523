/* emu_map: a string-keyed hash map (separate chaining, grows by doubling).
 *
 * Keys are copied; values are borrowed pointers the caller manages (the map never frees a
 * value). Not thread-safe: the owner serialises access. */
#ifndef EMU_MAP_H
#define EMU_MAP_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

typedef struct emu_map emu_map;

/* Creates an empty map; caller owns it (emu_map_destroy). */
st_code emu_map_create(emu_map **ret_map);
/* Frees the map and its key copies, not the values. Accepts NULL. */
void emu_map_destroy(emu_map *map);

/* The value stored under key, or NULL. */
void *emu_map_get(const emu_map *map, const char *key);
/* Stores value under key, replacing (and returning through *ret_previous, if not NULL) any
 * earlier value. ST_NOMEM leaves the map unchanged. */
st_code emu_map_put(emu_map *map, const char *key, void *value, void **ret_previous);
/* Removes key; returns its value or NULL. */
void *emu_map_remove(emu_map *map, const char *key);
size_t emu_map_size(const emu_map *map);

/* Calls visit for every entry (order unspecified); visit must not modify the map. */
void emu_map_each(const emu_map *map, void (*visit)(const char *key, void *value, void *closure),
                  void *closure);

#endif
