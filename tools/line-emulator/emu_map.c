#include "emu_map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct map_entry {
    struct map_entry *next;
    uint64_t hash;
    void *value;
    char key[]; /* NUL-terminated copy */
} map_entry;

struct emu_map {
    map_entry **buckets;
    size_t bucket_count; /* power of two */
    size_t size;
};

#define INITIAL_BUCKETS 64

static uint64_t hash_key(const char *key)
{
    /* FNV-1a: keys are our own random ids or test-chosen names, no adversary to resist. */
    uint64_t hash = 1469598103934665603ull;
    for (const unsigned char *at = (const unsigned char *)key; *at != '\0'; at++) {
        hash ^= *at;
        hash *= 1099511628211ull;
    }
    return hash;
}

st_code emu_map_create(emu_map **ret_map)
{
    emu_map *map = calloc(1, sizeof(*map));
    if (map == NULL)
        return ST_NOMEM;
    map->buckets = calloc(INITIAL_BUCKETS, sizeof(*map->buckets));
    if (map->buckets == NULL) {
        free(map);
        return ST_NOMEM;
    }
    map->bucket_count = INITIAL_BUCKETS;
    *ret_map = map;
    return ST_OK;
}

void emu_map_destroy(emu_map *map)
{
    if (map == NULL)
        return;
    for (size_t i = 0; i < map->bucket_count; i++) {
        map_entry *entry = map->buckets[i];
        while (entry != NULL) {
            map_entry *next = entry->next;
            free(entry);
            entry = next;
        }
    }
    free(map->buckets);
    free(map);
}

static map_entry **find_slot(const emu_map *map, const char *key, uint64_t hash)
{
    map_entry **slot = &map->buckets[hash & (map->bucket_count - 1)];
    while (*slot != NULL && ((*slot)->hash != hash || strcmp((*slot)->key, key) != 0))
        slot = &(*slot)->next;
    return slot;
}

void *emu_map_get(const emu_map *map, const char *key)
{
    map_entry *entry = *find_slot(map, key, hash_key(key));
    return entry != NULL ? entry->value : NULL;
}

static void grow(emu_map *map)
{
    size_t new_count = map->bucket_count * 2;
    map_entry **new_buckets = calloc(new_count, sizeof(*new_buckets));
    if (new_buckets == NULL)
        return; /* stay at the current size: slower, still correct */
    for (size_t i = 0; i < map->bucket_count; i++) {
        map_entry *entry = map->buckets[i];
        while (entry != NULL) {
            map_entry *next = entry->next;
            map_entry **head = &new_buckets[entry->hash & (new_count - 1)];
            entry->next = *head;
            *head = entry;
            entry = next;
        }
    }
    free(map->buckets);
    map->buckets = new_buckets;
    map->bucket_count = new_count;
}

st_code emu_map_put(emu_map *map, const char *key, void *value, void **ret_previous)
{
    uint64_t hash = hash_key(key);
    map_entry **slot = find_slot(map, key, hash);
    if (*slot != NULL) {
        if (ret_previous != NULL)
            *ret_previous = (*slot)->value;
        (*slot)->value = value;
        return ST_OK;
    }
    size_t key_len = strlen(key);
    map_entry *entry = malloc(sizeof(*entry) + key_len + 1);
    if (entry == NULL)
        return ST_NOMEM;
    entry->next = NULL;
    entry->hash = hash;
    entry->value = value;
    memcpy(entry->key, key, key_len + 1);
    *slot = entry;
    map->size++;
    if (ret_previous != NULL)
        *ret_previous = NULL;
    if (map->size > map->bucket_count)
        grow(map);
    return ST_OK;
}

void *emu_map_remove(emu_map *map, const char *key)
{
    map_entry **slot = find_slot(map, key, hash_key(key));
    map_entry *entry = *slot;
    if (entry == NULL)
        return NULL;
    *slot = entry->next;
    void *value = entry->value;
    free(entry);
    map->size--;
    return value;
}

size_t emu_map_size(const emu_map *map)
{
    return map->size;
}

void emu_map_each(const emu_map *map, void (*visit)(const char *key, void *value, void *closure),
                  void *closure)
{
    for (size_t i = 0; i < map->bucket_count; i++)
        for (map_entry *entry = map->buckets[i]; entry != NULL; entry = entry->next)
            visit(entry->key, entry->value, closure);
}
